//! Parsing Astute's replies on the `nailgun` queue:
//! `{"method": "deploy_resp", "args": {"task_uuid": …, "status": …, "progress": …, "error": …,
//! "nodes": [{"uid": "7" or 7, "status": …, …}]}}`.
//!
//! Free text (`error`, `error_msg`) is made storable here (see `core::storable`), so a NUL byte
//! in a Puppet log line cannot stop the failure it reports from being recorded. A node entry
//! that cannot be read (a `uid` that is no node id) is set aside with its reason; the rest of
//! the reply still applies.

use serde::Deserialize;
use serde_json::Value;

use crate::core::enums::{NodeErrorType, NodeStatus};
use crate::core::reply::{DeployReply, NodeReport};
use crate::core::storable::storable;

/// The reply methods this bridge handles.
pub const DEPLOY_RESP: &str = "deploy_resp";

/// A reply that can never be applied; it goes to the dead-letter queue with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Poison(pub String);

/// A parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AstuteReply {
    /// The reply method (always `deploy_resp` today).
    pub method: String,
    /// The task the reply is about.
    pub task_uuid: String,
    /// What the rules apply.
    pub reply: DeployReply,
    /// Node entries that could not be read; they are reported, not applied.
    pub rejected: Vec<RejectedNode>,
}

/// A node entry of a reply that could not be read, as it came, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedNode {
    /// Its position in the reply's `nodes` (from 0).
    pub index: usize,
    /// The entry as it came.
    pub entry: Value,
    /// Why it was set aside.
    pub reason: String,
}

impl AstuteReply {
    /// Why the rejected node entries were set aside, in one line (empty when none were).
    pub fn rejection_reason(&self) -> String {
        self.rejected
            .iter()
            .map(|r| format!("node entry {}: {}", r.index, r.reason))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A reply carrying only the rejected node entries, for the dead-letter queue.
    pub fn rejected_body(&self) -> Vec<u8> {
        let nodes: Vec<&Value> = self.rejected.iter().map(|r| &r.entry).collect();
        serde_json::json!({
            "method": self.method,
            "args": {"task_uuid": self.task_uuid, "nodes": nodes},
        })
        .to_string()
        .into_bytes()
    }
}

#[derive(Deserialize)]
struct Envelope {
    method: Option<String>,
    args: Option<Value>,
}

#[derive(Deserialize)]
struct Args {
    task_uuid: Option<Value>,
    status: Option<String>,
    progress: Option<f64>,
    error: Option<String>,
    nodes: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct RawNode {
    uid: Value,
    status: Option<String>,
    progress: Option<f64>,
    error_type: Option<String>,
    error_msg: Option<String>,
    online: Option<bool>,
}

/// Reads just the task uuid, to pick the reply's lane before the full parse.
pub fn peek_task_uuid(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Peek {
        args: Option<PeekArgs>,
    }
    #[derive(Deserialize)]
    struct PeekArgs {
        task_uuid: Option<String>,
    }
    // Read as `parse` reads, so a reply with stray bytes still finds its task's lane.
    serde_json::from_str::<Peek>(&String::from_utf8_lossy(body))
        .ok()?
        .args?
        .task_uuid
}

/// Refuses a body over `limit` bytes, before anything of it is read.
pub fn check_size(body: &[u8], limit: usize) -> Result<(), Poison> {
    if body.len() > limit {
        return Err(Poison(format!(
            "the reply is {} bytes, over amqp.max_reply_bytes ({limit})",
            body.len()
        )));
    }
    Ok(())
}

/// `parse`, for a body of at most `limit` bytes (else poison, unread).
pub fn parse_within(body: &[u8], limit: usize) -> Result<AstuteReply, Poison> {
    check_size(body, limit)?;
    parse(body)
}

/// Parses a reply body, or says why it is poison. Bytes that are not UTF-8 are read as U+FFFD
/// (a log line may carry them), so the reply still applies.
pub fn parse(body: &[u8]) -> Result<AstuteReply, Poison> {
    let text = String::from_utf8_lossy(body);
    let envelope: Envelope = serde_json::from_str(&text)
        .map_err(|e| Poison(format!("not a JSON object with method and args: {e}")))?;
    let method = envelope.method.ok_or_else(|| Poison("no method".into()))?;
    let args = envelope.args.ok_or_else(|| Poison("no args".into()))?;
    let task_uuid = match args.get("task_uuid") {
        Some(Value::String(uuid)) if uuid.chars().any(char::is_control) => {
            return Err(Poison(format!(
                "task_uuid contains control characters: {}",
                storable(uuid)
            )))
        }
        Some(Value::String(uuid)) if !uuid.is_empty() => uuid.clone(),
        Some(Value::Null) | None => return Err(Poison("no task_uuid".into())),
        Some(other) => return Err(Poison(format!("task_uuid is not a string: {other}"))),
    };
    if method != DEPLOY_RESP {
        return Err(Poison(format!("unknown method '{method}'")));
    }
    let args: Args =
        serde_json::from_value(args).map_err(|e| Poison(format!("malformed args: {e}")))?;
    let _ = args.task_uuid;
    let mut nodes = Vec::new();
    let mut rejected = Vec::new();
    for (index, entry) in args.nodes.unwrap_or_default().into_iter().enumerate() {
        match node_report(&entry) {
            Ok(report) => nodes.push(report),
            Err(reason) => rejected.push(RejectedNode {
                index,
                entry,
                reason: reason.0,
            }),
        }
    }
    Ok(AstuteReply {
        method,
        task_uuid,
        reply: DeployReply {
            status: args.status,
            progress: args.progress.map(clamp_progress),
            error: args.error.map(|e| storable(&e).into_owned()),
            nodes,
        },
        rejected,
    })
}

/// Astute clamps progress to 0–100; so do we, whatever the sender did.
fn clamp_progress(progress: f64) -> u8 {
    if progress.is_nan() {
        0
    } else {
        progress.clamp(0.0, 100.0) as u8
    }
}

fn node_report(entry: &Value) -> Result<NodeReport, Poison> {
    let raw =
        RawNode::deserialize(entry).map_err(|e| Poison(format!("malformed node entry: {e}")))?;
    let uid = match &raw.uid {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => s.trim().parse::<i32>().ok(),
        _ => None,
    }
    .ok_or_else(|| Poison(format!("node uid is not a node id: {}", raw.uid)))?;
    // Astute ranks `offline` below every status: it means the node went away, not a new status.
    let (status, offline) = match raw.status.as_deref() {
        Some("offline") => (None, true),
        Some(text) => (NodeStatus::parse(text), false),
        None => (None, false),
    };
    Ok(NodeReport {
        uid,
        status,
        progress: raw.progress.map(clamp_progress),
        error_type: raw.error_type.as_deref().and_then(NodeErrorType::parse),
        error_msg: raw.error_msg.map(|m| storable(&m).into_owned()),
        online: if offline { Some(false) } else { raw.online },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_reply_parses_with_string_and_integer_uids() {
        let body = br#"{"method":"deploy_resp","args":{"task_uuid":"t-1","status":"running","progress":42.7,
            "nodes":[{"uid":"7","role":"controller","status":"error","progress":150,"error_type":"deploy","error_msg":"boom"},
                     {"uid":8,"online":false}]}}"#;
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.task_uuid, "t-1");
        assert_eq!(parsed.reply.status.as_deref(), Some("running"));
        assert_eq!(parsed.reply.progress, Some(42));
        assert_eq!(parsed.reply.nodes[0].uid, 7);
        assert_eq!(parsed.reply.nodes[0].status, Some(NodeStatus::Error));
        assert_eq!(parsed.reply.nodes[0].progress, Some(100));
        assert_eq!(
            parsed.reply.nodes[0].error_type,
            Some(NodeErrorType::Deploy)
        );
        assert_eq!(parsed.reply.nodes[1].uid, 8);
        assert_eq!(parsed.reply.nodes[1].online, Some(false));
        assert_eq!(peek_task_uuid(body).as_deref(), Some("t-1"));
    }

    #[test]
    fn only_task_uuid_is_required() {
        let parsed = parse(br#"{"method":"deploy_resp","args":{"task_uuid":"t"}}"#).unwrap();
        assert_eq!(parsed.reply, DeployReply::default());
    }

    #[test]
    fn poison_is_named() {
        let cases: [(&[u8], &str); 7] = [
            (b"not json", "not a JSON"),
            (br#"[1,2]"#, "not a JSON"),
            (br#"{"args":{"task_uuid":"t"}}"#, "no method"),
            (br#"{"method":"deploy_resp","args":{}}"#, "no task_uuid"),
            (
                br#"{"method":"deploy_resp","args":{"task_uuid":5}}"#,
                "not a string",
            ),
            (
                br#"{"method":"provision_resp","args":{"task_uuid":"t"}}"#,
                "unknown method 'provision_resp'",
            ),
            (
                br#"{"method":"deploy_resp","args":{"task_uuid":"t","progress":"half"}}"#,
                "malformed args",
            ),
        ];
        for (body, reason) in cases {
            let err = parse(body).unwrap_err();
            assert!(
                err.0.contains(reason),
                "{:?}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        let err = parse(b"{\"method\":\"deploy_resp\",\"args\":{\"task_uuid\":\"t\\u0000\"}}")
            .unwrap_err();
        assert!(err.0.contains("control characters"), "{err}");
    }

    #[test]
    fn a_bad_node_entry_is_set_aside_and_the_rest_applies() {
        let body = br#"{"method":"deploy_resp","args":{"task_uuid":"t","status":"error","error":"boom",
            "nodes":[{"uid":"x","status":"error"},{"uid":7,"status":"ready"},5,{"uid":"8","progress":"half"},{"uid":9.5}]}}"#;
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.reply.status.as_deref(), Some("error"));
        assert_eq!(parsed.reply.nodes.len(), 1);
        assert_eq!(parsed.reply.nodes[0].uid, 7);
        let rejected: Vec<usize> = parsed.rejected.iter().map(|r| r.index).collect();
        assert_eq!(rejected, vec![0, 2, 3, 4]);
        assert_eq!(
            parsed.rejected[0].entry,
            serde_json::json!({"uid":"x","status":"error"})
        );
        let reason = parsed.rejection_reason();
        assert!(
            reason.starts_with("node entry 0: node uid is not a node id: \"x\"; node entry 2: malformed node entry"),
            "{reason}"
        );
        let dead: Value = serde_json::from_slice(&parsed.rejected_body()).unwrap();
        assert_eq!(dead["method"], "deploy_resp");
        assert_eq!(dead["args"]["task_uuid"], "t");
        assert_eq!(dead["args"]["nodes"].as_array().map(Vec::len), Some(4));
        assert_eq!(dead["args"]["nodes"][0]["uid"], "x");
    }

    #[test]
    fn free_text_is_made_storable() {
        let body = br#"{"method":"deploy_resp","args":{"task_uuid":"t","status":"error",
            "error":"Puppet\u0000 failed","nodes":[{"uid":1,"error_msg":"err\u0000\u001b[0m"}]}}"#;
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.reply.error.as_deref(), Some("Puppet\\u0000 failed"));
        assert_eq!(
            parsed.reply.nodes[0].error_msg.as_deref(),
            Some("err\\u0000\\u001b[0m")
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_lose_the_reply() {
        let mut body =
            br#"{"method":"deploy_resp","args":{"task_uuid":"t","status":"error","error":"bad "#
                .to_vec();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(br#" byte"}}"#);
        let parsed = parse(&body).unwrap();
        assert_eq!(
            parsed.reply.error.as_deref(),
            Some("bad \u{fffd}\u{fffd} byte")
        );
        assert_eq!(peek_task_uuid(&body).as_deref(), Some("t"), "the same lane");
    }

    #[test]
    fn offline_status_means_offline_and_unknown_statuses_are_left_alone() {
        let parsed = parse(br#"{"method":"deploy_resp","args":{"task_uuid":"t","nodes":[{"uid":1,"status":"offline"},{"uid":2,"status":"weird"}]}}"#).unwrap();
        assert_eq!(parsed.reply.nodes[0].online, Some(false));
        assert_eq!(parsed.reply.nodes[0].status, None);
        assert_eq!(parsed.reply.nodes[1].status, None);
    }

    #[test]
    fn negative_progress_clamps_to_zero() {
        let parsed =
            parse(br#"{"method":"deploy_resp","args":{"task_uuid":"t","progress":-5}}"#).unwrap();
        assert_eq!(parsed.reply.progress, Some(0));
    }
}
