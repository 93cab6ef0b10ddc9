//! Hostile input, generated (proptest): whatever bytes or JSON arrive, the request parser, the
//! reply parser, the parsing of the operations' args (as HTTP bodies and AMQP `args` are read)
//! and the deploy serializer answer, refuse or give a dead-letter reason — never panic — and a
//! body over its size limit is refused before it is parsed. Pure: no broker, no database.
//! `PROPTEST_CASES` raises the number of cases (the default keeps `cargo test` quick).

use std::time::Instant;

use astute_bridge::core::deploy_message::{
    deploy_message_within, ClusterFacts, DeployPlan, NodeFacts, ReleaseFacts,
};
use astute_bridge::core::enums::{ClusterMode, OperatingSystem};
use astute_bridge::core::release_sources::{validate_stored, StoredSources};
use astute_bridge::core::source_allowlist::SourcePrefixes;
use astute_bridge::service::{clusters, notifications, parse_args, patching, releases};
use astute_bridge::wire::{astute_reply, request};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any JSON value, a few levels deep, with strings that include control characters, NULs and
/// non-ASCII, and numbers at the edges.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("task_uuid"),
            Just("deploy_resp"),
            Just("nodes"),
            Just("uid"),
            Just("status"),
            Just("ready"),
            Just("error"),
            Just("rsync://10.20.0.2:/puppet/"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Object keys: the contract's names (so generated input reaches deep into the parsers) or
/// anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "method",
            "args",
            "task_uuid",
            "status",
            "progress",
            "error",
            "nodes",
            "uid",
            "error_type",
            "error_msg",
            "online",
            "name",
            "version",
            "operating_system",
            "repo_metadata",
            "puppet_modules_source",
            "puppet_manifests_source",
            "cluster_id",
            "release_id",
            "fqdn",
            "roles",
            "mode",
            "attributes",
            "topic",
            "message",
        ])
        .prop_map(String::from),
        ".{0,12}",
    ]
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => Map::from_iter([("value".to_string(), other)]),
    }
}

proptest! {
    #[test]
    fn any_bytes_are_a_request_or_a_refusal(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = request::parse(&body);
    }

    #[test]
    fn any_json_is_a_request_or_a_refusal(method in any_json(), args in any_json()) {
        let body = json!({"method": method, "args": args}).to_string();
        match request::parse(body.as_bytes()) {
            Ok(parsed) => prop_assert!(method.is_string() && parsed.method == method.as_str().unwrap_or_default()),
            Err(refusal) => prop_assert_eq!(refusal.code.as_str(), "invalid_request"),
        }
    }

    #[test]
    fn any_bytes_are_a_reply_or_a_dead_letter_reason(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(poison) = astute_reply::parse_within(&body, 1 << 20) {
            prop_assert!(!poison.0.is_empty());
        }
        let _ = astute_reply::peek_task_uuid(&body);
    }

    #[test]
    fn any_json_is_a_reply_or_a_dead_letter_reason(args in any_json(), method in any_json()) {
        let body = json!({"method": method, "args": args}).to_string();
        match astute_reply::parse_within(body.as_bytes(), 1 << 20) {
            Ok(reply) => {
                prop_assert!(!reply.task_uuid.is_empty());
                // What is set aside can always be dead-lettered as JSON.
                let _: Value = serde_json::from_slice(&reply.rejected_body()).expect("JSON");
            }
            Err(poison) => prop_assert!(!poison.0.is_empty()),
        }
    }

    #[test]
    fn any_args_are_typed_or_refused(args in any_json()) {
        // The same parsing HTTP bodies and AMQP args go through.
        let map = object(args);
        for result in [
            parse_args::<releases::NewRelease>(map.clone()).map(|_| ()),
            parse_args::<clusters::NewCluster>(map.clone()).map(|_| ()),
            parse_args::<clusters::NewNodes>(map.clone()).map(|_| ()),
            parse_args::<patching::UpdateTarget>(map.clone()).map(|_| ()),
            parse_args::<notifications::NewNotification>(map.clone()).map(|_| ()),
            parse_args::<notifications::NotificationFilter>(map).map(|_| ()),
        ] {
            if let Err(refusal) = result {
                prop_assert_eq!(refusal.code.as_str(), "invalid_request");
            }
        }
    }

    #[test]
    fn any_sources_are_checked_without_panic(
        repos in any_json(),
        modules in ".{0,80}",
        manifests in prop_oneof![".{0,80}", "rsync://[a-z0-9.:@%/\\\\]{0,40}"],
    ) {
        let repos = object(repos);
        let stored = StoredSources {
            repo_metadata: &repos,
            puppet_modules_source: &modules,
            puppet_manifests_source: &manifests,
        };
        for os in [OperatingSystem::Ubuntu, OperatingSystem::CentOS] {
            let _ = validate_stored(os, stored);
        }
        let prefixes = SourcePrefixes::parse(&["rsync://10.20.0.2:/puppet/".to_string()]).expect("prefix");
        let _ = prefixes.check(stored);
    }

    #[test]
    fn any_plan_is_cast_as_json_or_refused_as_too_large(
        attributes in any_json(),
        repo_metadata in any_json(),
        names in prop::collection::vec((".{0,20}", prop::collection::vec(".{0,12}", 0..4), any::<bool>()), 0..20),
        version in ".{0,20}",
        ha in any::<bool>(),
        limit in 0usize..200_000,
    ) {
        let plan = DeployPlan {
            task_uuid: "00000000-0000-4000-8000-000000000000".into(),
            cluster: ClusterFacts {
                id: 1,
                mode: if ha { ClusterMode::HaCompact } else { ClusterMode::Multinode },
                fuel_version: "5.1".into(),
                attributes: object(attributes),
            },
            deployed: ReleaseFacts {
                version: version.clone(),
                operating_system: OperatingSystem::Ubuntu,
                repo_metadata,
                puppet_modules_source: "rsync://10.20.0.2:/puppet/modules/".into(),
                puppet_manifests_source: "rsync://10.20.0.2:/puppet/manifests/".into(),
            },
            previous_version: version,
            nodes: names
                .into_iter()
                .enumerate()
                .map(|(i, (name, roles, online))| NodeFacts {
                    id: i as i32 + 1,
                    fqdn: format!("{name}.tld"),
                    name,
                    roles,
                    online,
                })
                .collect(),
        };
        match deploy_message_within(&plan, limit) {
            Ok(cast) => {
                prop_assert!(cast.len() <= limit);
                let parsed: Value = serde_json::from_str(&cast).expect("a cast is JSON");
                prop_assert_eq!(&parsed["method"], "deploy");
            }
            Err(err) => prop_assert!(err.to_string().contains("over the limit"), "{}", err),
        }
    }
}

/// A body far over the limit is refused by its size alone: it is not JSON at all, and the
/// reason names the size, so nothing of it was parsed; the work does not grow with it.
#[test]
fn huge_replies_are_refused_before_parsing() {
    let limit = 4 * 1024 * 1024;
    let huge = vec![b'['; 64 * 1024 * 1024];
    let started = Instant::now();
    let poison = astute_reply::parse_within(&huge, limit).expect_err("over the limit");
    assert!(poison.0.contains("max_reply_bytes"), "{}", poison.0);
    assert!(
        started.elapsed().as_millis() < 100,
        "refused by its length, not read ({:?})",
        started.elapsed()
    );
}

/// Deep nesting (a classic stack exhaustion) is refused by serde_json's recursion limit with a
/// reason, in both parsers.
#[test]
fn deeply_nested_input_is_refused_not_a_crash() {
    let depth = 100_000;
    let nested = format!(
        "{{\"method\":\"deploy_resp\",\"args\":{{\"task_uuid\":\"x\",\"nodes\":{}{}}}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let poison = astute_reply::parse(nested.as_bytes()).expect_err("too deep");
    assert!(poison.0.contains("recursion"), "{}", poison.0);
    let refusal = request::parse(nested.as_bytes()).expect_err("too deep");
    assert_eq!(refusal.code.as_str(), "invalid_request");
}

/// A huge array of small node entries within the limit is read in time linear in its size.
#[test]
fn a_large_reply_within_the_limit_is_read() {
    let nodes: Vec<Value> = (0..20_000)
        .map(|i| json!({"uid": i.to_string(), "status": "ready", "progress": 100}))
        .collect();
    let body = json!({"method": "deploy_resp", "args": {"task_uuid": "t", "status": "ready", "nodes": nodes}})
        .to_string();
    assert!(body.len() < 4 * 1024 * 1024);
    let reply = astute_reply::parse_within(body.as_bytes(), 4 * 1024 * 1024).expect("a reply");
    assert_eq!(reply.reply.nodes.len(), 20_000);
}
