//! Requests from other services (contract section 4): `{"method": …, "args": {…}}`, answered
//! `{"ok": true, "result": …}` or `{"ok": false, "error": {"code": …, "message": …}}`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::core::compact;
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

/// `{"ok": true, "result": …}`
#[derive(Serialize)]
struct OkResponse<'a> {
    ok: bool,
    result: &'a RawValue,
}

/// `{"error": {"code": …, "message": …}, "ok": false}`
#[derive(Serialize)]
struct ErrorResponse<'a> {
    error: &'a Refusal,
    ok: bool,
}

/// The answer to a request that succeeded with `result` (already serialized), if it takes at
/// most `limit` bytes; else `message_too_large`, naming both sizes. Its size is counted before
/// anything is written.
pub fn ok_response(result: &RawValue, limit: usize) -> Result<String, Refusal> {
    let response = OkResponse { ok: true, result };
    let internal =
        |e: serde_json::Error| Refusal::new(ErrorCode::Internal, format!("the answer: {e}"));
    let size = compact::size_of(&response).map_err(internal)?;
    if size > limit {
        return Err(Refusal::new(
            ErrorCode::MessageTooLarge,
            format!(
                "the answer would be {size} bytes, over the limit of {limit} bytes (amqp.max_message_bytes); nothing changed"
            ),
        ));
    }
    compact::write_sized(&response, size).map_err(internal)
}

/// The answer to a refused request.
pub fn error_response(refusal: &Refusal) -> String {
    compact::to_string(&ErrorResponse {
        error: refusal,
        ok: false,
    })
    .unwrap_or_else(|_| {
        r#"{"error":{"code":"internal","message":"the answer could not be serialized"},"ok":false}"#
            .to_owned()
    })
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

    use serde_json::json;

    #[test]
    fn responses_have_the_contract_shape() {
        let result = RawValue::from_string(r#"{"a":1}"#.to_owned()).unwrap();
        assert_eq!(
            ok_response(&result, 1024).unwrap(),
            r#"{"ok":true,"result":{"a":1}}"#
        );
        let refused: Value =
            serde_json::from_str(&error_response(&Refusal::not_found("no cluster 9"))).unwrap();
        assert_eq!(
            refused,
            json!({"ok": false, "error": {"code": "not_found", "message": "no cluster 9"}})
        );
    }

    #[test]
    fn an_answer_over_the_limit_is_refused_with_both_sizes() {
        let result = RawValue::from_string(r#"{"a":1}"#.to_owned()).unwrap();
        let size = r#"{"ok":true,"result":{"a":1}}"#.len();
        assert!(ok_response(&result, size).is_ok());
        let refused = ok_response(&result, size - 1).unwrap_err();
        assert_eq!(refused.code, ErrorCode::MessageTooLarge);
        assert!(
            refused.message.starts_with(&format!(
                "the answer would be {size} bytes, over the limit of {} bytes",
                size - 1
            )),
            "{}",
            refused.message
        );
    }
}
