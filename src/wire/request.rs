//! Requests from other services (contract section 4): `{"method": …, "args": {…}}`, answered
//! `{"ok": true, "result": …}` or `{"ok": false, "error": {"code": …, "message": …}}`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::core::refusal::{ErrorCode, Refusal};

/// A request envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub args: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    method: String,
    #[serde(default)]
    args: Option<Map<String, Value>>,
}

/// Parses a request body; anything but `{"method": string, "args": object}` is `invalid_request`.
pub fn parse(body: &[u8]) -> Result<Request, Refusal> {
    let raw: RawRequest = serde_json::from_slice(body).map_err(|e| {
        Refusal::invalid_request(format!(
            "a request is a JSON object {{\"method\": string, \"args\": object}}: {e}"
        ))
    })?;
    Ok(Request {
        method: raw.method,
        args: raw.args.unwrap_or_default(),
    })
}

/// The answer to a request.
pub fn response(result: &Result<Value, Refusal>) -> Value {
    match result {
        Ok(value) => json!({"ok": true, "result": value}),
        Err(refusal) => {
            json!({"ok": false, "error": {"code": refusal.code, "message": refusal.message}})
        }
    }
}

/// Whether an error is worth retrying later rather than answering.
pub fn is_transient(refusal: &Refusal) -> bool {
    refusal.code == ErrorCode::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_method_and_args() {
        let r = parse(br#"{"method":"get_cluster","args":{"cluster_id":1}}"#).unwrap();
        assert_eq!(r.method, "get_cluster");
        assert_eq!(r.args["cluster_id"], 1);
        assert!(parse(br#"{"method":"list_releases"}"#)
            .unwrap()
            .args
            .is_empty());
    }

    #[test]
    fn refuses_anything_else() {
        for body in [
            &b"nope"[..],
            br#"{"args":{}}"#,
            br#"{"method":1}"#,
            br#"{"method":"x","args":[]}"#,
            br#"{"method":"x","extra":1}"#,
        ] {
            assert_eq!(parse(body).unwrap_err().code, ErrorCode::InvalidRequest);
        }
    }

    #[test]
    fn responses_have_the_contract_shape() {
        assert_eq!(
            response(&Ok(json!({"a":1}))),
            json!({"ok": true, "result": {"a": 1}})
        );
        assert_eq!(
            response(&Err(Refusal::not_found("no cluster 9"))),
            json!({"ok": false, "error": {"code": "not_found", "message": "no cluster 9"}})
        );
    }
}
