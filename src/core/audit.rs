//! What the audit trail says about one request: its targets, read from the request's args and,
//! for what it made, from its answer. Pure.

use serde_json::{Map, Value};

/// The actor of a request nobody identified.
pub const ANONYMOUS: &str = "anonymous";

/// How the request came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Amqp,
    Http,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Amqp => "amqp",
            Transport::Http => "http",
        }
    }
}

/// The cluster, release and nodes a request named or made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub cluster_id: Option<i32>,
    pub release_id: Option<i32>,
    pub node_ids: Vec<i32>,
}

fn id(value: &Value) -> Option<i32> {
    value.as_i64().and_then(|n| i32::try_from(n).ok())
}

impl Targets {
    /// The ids named in a request's args (`cluster_id`, `release_id`, `node_id`).
    pub fn from_args(args: &Map<String, Value>) -> Targets {
        let get = |key: &str| args.get(key).and_then(id);
        Targets {
            cluster_id: get("cluster_id"),
            release_id: get("release_id"),
            node_ids: get("node_id").into_iter().collect(),
        }
    }

    /// Adds what `method` made, read from its answer: the new release's or cluster's id, the
    /// added nodes' ids, a task's cluster and target release.
    pub fn with_answer(mut self, method: &str, answer: &Value) -> Targets {
        match method {
            "create_release" => self.release_id = self.release_id.or(id(&answer["id"])),
            "create_cluster" => {
                self.cluster_id = self.cluster_id.or(id(&answer["id"]));
                self.release_id = self.release_id.or(id(&answer["release_id"]));
            }
            "add_nodes" => {
                if let Some(nodes) = answer.as_array() {
                    self.node_ids
                        .extend(nodes.iter().filter_map(|n| id(&n["id"])));
                }
            }
            "add_notification" => {
                self.cluster_id = self.cluster_id.or(id(&answer["cluster_id"]));
                if self.node_ids.is_empty() {
                    self.node_ids.extend(id(&answer["node_id"]));
                }
            }
            "update_cluster" | "rollback_cluster" | "set_pending_release" => {
                self.cluster_id = self.cluster_id.or(id(&answer["cluster_id"]));
                self.release_id = self
                    .release_id
                    .or(id(&answer["to_release_id"]))
                    .or(id(&answer["pending_release_id"]));
            }
            _ => {}
        }
        self
    }

    /// Whether `method` makes something whose id only its answer carries.
    pub fn needs_answer(method: &str) -> bool {
        matches!(
            method,
            "create_release"
                | "create_cluster"
                | "add_nodes"
                | "rollback_cluster"
                | "add_notification"
        )
    }

    /// The node ids as the `node_ids` column holds them: a JSON array, or nothing.
    pub fn node_ids_text(&self) -> Option<String> {
        (!self.node_ids.is_empty()).then(|| {
            let ids: Vec<String> = self.node_ids.iter().map(i32::to_string).collect();
            format!("[{}]", ids.join(","))
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn targets_come_from_the_args_and_what_was_made() {
        let t = Targets::from_args(&args(json!({"cluster_id": 3, "release_id": 7})));
        assert_eq!((t.cluster_id, t.release_id), (Some(3), Some(7)));

        let t = Targets::from_args(&args(json!({"name": "r"})))
            .with_answer("create_release", &json!({"id": 9}));
        assert_eq!(t.release_id, Some(9));

        let t = Targets::from_args(&args(json!({"cluster_id": 3, "nodes": []})))
            .with_answer("add_nodes", &json!([{"id": 4}, {"id": 5}]));
        assert_eq!(t.node_ids_text().as_deref(), Some("[4,5]"));

        let t = Targets::from_args(&args(json!({"cluster_id": 3}))).with_answer(
            "rollback_cluster",
            &json!({"cluster_id": 3, "to_release_id": 1}),
        );
        assert_eq!(t.release_id, Some(1));
    }

    #[test]
    fn hostile_ids_are_left_out() {
        let t = Targets::from_args(&args(
            json!({"cluster_id": "1; DROP TABLE audit", "release_id": 1e300, "node_id": 4294967296u64}),
        ));
        assert_eq!(t, Targets::default());
        assert_eq!(t.node_ids_text(), None);
    }
}
