//! What a simulated Astute answers to one `deploy` cast, as a list of `deploy_resp` args: pure,
//! so every scenario is unit-tested without a broker.
//!
//! It follows Astute 5.1's deployment engine and reporter: entries are deployed in `priority`
//! order, one priority group at a time; a node reports `deploying` with growing progress while
//! its roles run (a node with several roles reports one combined progress) and `ready` when its
//! last role is done; after a group in which a `fail_if_error` entry failed, the remaining
//! groups are skipped; when the engine returns, the dispatcher reports `ready`/100, which the
//! reporter turns into `error` ("Some error occured on nodes [...]") if a node failed.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// What the simulated deployment does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scenario {
    /// Deploying this node (by name) fails with a Puppet error.
    pub fail_node: Option<String>,
    /// This node (by name) goes offline while it deploys.
    pub offline_node: Option<String>,
    /// The whole deployment fails with this error after the first group (as an Astute timeout
    /// or exception would).
    pub error: Option<String>,
    /// Nothing is ever answered: the cast is taken and the task hears nothing more (for
    /// rehearsing the watchdog).
    pub stall: bool,
    /// Progress reports per role (at least 1).
    pub steps: u8,
}

/// Why a cast cannot be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a deploy cast Astute could run: {0}")]
pub struct NotACast(pub String);

/// One (node, role) entry of the cast, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    uid: String,
    name: String,
    role: String,
    priority: u64,
    fail_if_error: bool,
}

/// The cast's task uuid and entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cast {
    pub task_uuid: String,
    entries: Vec<Entry>,
}

impl Cast {
    /// Reads what the engine needs from a cast; a cast without them is refused.
    pub fn parse(message: &Value) -> Result<Cast, NotACast> {
        if message["method"] != "deploy" {
            return Err(NotACast(format!("method is {}", message["method"])));
        }
        let args = &message["args"];
        let task_uuid = args["task_uuid"]
            .as_str()
            .ok_or_else(|| NotACast("no args.task_uuid".into()))?
            .to_string();
        let info = args["deployment_info"]
            .as_array()
            .ok_or_else(|| NotACast("no args.deployment_info list".into()))?;
        let entries = info
            .iter()
            .map(|entry| {
                let text = |key: &str| {
                    entry[key]
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| NotACast(format!("an entry without '{key}'")))
                };
                Ok(Entry {
                    uid: text("uid")?,
                    name: text("name")?,
                    role: text("role")?,
                    priority: entry["priority"].as_u64().unwrap_or(0),
                    fail_if_error: entry["fail_if_error"].as_bool().unwrap_or(false),
                })
            })
            .collect::<Result<Vec<_>, NotACast>>()?;
        Ok(Cast { task_uuid, entries })
    }

    /// Node names by uid, for printing.
    pub fn node_names(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|e| (e.uid.clone(), e.name.clone()))
            .collect()
    }
}

/// The `args` of every `deploy_resp` the simulated Astute sends for `cast`, in order. `seed`
/// jitters the progress steps, the same way for the same seed.
pub fn replies(cast: &Cast, scenario: &Scenario, seed: u64) -> Vec<Value> {
    if scenario.stall {
        return Vec::new();
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let steps = scenario.steps.max(1);
    let roles_of = |uid: &str| cast.entries.iter().filter(|e| e.uid == uid).count().max(1);
    let mut out = Vec::new();
    // Per node: roles finished, and whether it failed or went away.
    let mut finished: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failed: Vec<String> = Vec::new();
    let node_report = |node: Value| json!({"task_uuid": cast.task_uuid, "nodes": [node]});

    let mut groups: BTreeMap<u64, Vec<&Entry>> = BTreeMap::new();
    for entry in &cast.entries {
        groups.entry(entry.priority).or_default().push(entry);
    }
    let mut aborted = false;
    for (index, group) in groups.values().enumerate() {
        for entry in group {
            if failed.contains(&entry.uid) {
                continue; // a failed node's other roles are not run
            }
            let roles = roles_of(&entry.uid);
            let done = finished.get(entry.uid.as_str()).copied().unwrap_or(0);
            let base = 100 * done / roles;
            let share = 100 / roles;
            let fails = scenario.fail_node.as_deref() == Some(entry.name.as_str());
            let offline = scenario.offline_node.as_deref() == Some(entry.name.as_str());
            let mut last = base;
            for step in 1..=steps {
                let nominal = base + share * usize::from(step) / (usize::from(steps) + 1);
                // Jitter by up to a few points, never backwards, never to 100 before the end.
                let jittered = (nominal + rng.usize(0..=3)).clamp(last, 99);
                last = jittered;
                out.push(node_report(json!({
                    "uid": entry.uid, "role": entry.role, "status": "deploying", "progress": jittered,
                })));
                if (fails || offline) && step == steps.div_ceil(2) {
                    break;
                }
            }
            if fails {
                out.push(node_report(json!({
                    "uid": entry.uid, "role": entry.role, "status": "error", "error_type": "deploy",
                    "progress": 100,
                })));
                failed.push(entry.uid.clone());
                aborted |= entry.fail_if_error;
                continue;
            }
            if offline {
                out.push(node_report(json!({
                    "uid": entry.uid, "status": "error", "error_type": "deploy", "online": false,
                })));
                failed.push(entry.uid.clone());
                aborted |= entry.fail_if_error;
                continue;
            }
            let done = done + 1;
            finished.insert(entry.uid.as_str(), done);
            if done == roles {
                out.push(node_report(json!({
                    "uid": entry.uid, "role": entry.role, "status": "ready", "progress": 100,
                })));
            } else {
                out.push(node_report(json!({
                    "uid": entry.uid, "role": entry.role, "status": "deploying", "progress": 100 * done / roles,
                })));
            }
        }
        if let Some(error) = &scenario.error {
            if index == 0 {
                out.push(json!({"task_uuid": cast.task_uuid, "status": "error", "error": error}));
                return out;
            }
        }
        if aborted {
            break; // a critical role failed: Astute stops after this group
        }
    }
    out.push(if failed.is_empty() {
        json!({"task_uuid": cast.task_uuid, "status": "ready", "progress": 100})
    } else {
        json!({
            "task_uuid": cast.task_uuid, "status": "error", "progress": 100,
            "error": format!("Some error occured on nodes {}", ruby_inspect(&failed)),
        })
    });
    out
}

/// A list of strings as Ruby's `Array#inspect` prints it: `["3", "7"]`.
fn ruby_inspect(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
#[path = "script_tests.rs"]
mod tests;
