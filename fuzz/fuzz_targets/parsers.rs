//! Every parser of untrusted bytes: a request (AMQP body), a reply from Astute (with the size
//! check first, as the reply lanes do), and the operations' args. Any input must give an
//! answer, a refusal or a dead-letter reason; a panic is a finding.
#![no_main]

use astute_bridge::service::{clusters, parse_args, releases};
use astute_bridge::wire::{astute_reply, request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = request::parse(data);
    let _ = astute_reply::peek_task_uuid(data);
    let _ = astute_reply::parse_within(data, 4 * 1024 * 1024);
    if let Ok(serde_json::Value::Object(args)) = serde_json::from_slice(data) {
        let _ = parse_args::<releases::NewRelease>(args.clone());
        let _ = parse_args::<clusters::NewNodes>(args);
    }
});
