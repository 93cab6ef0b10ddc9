//! The size limit of what the bridge publishes (`amqp.max_message_bytes`, contract section 4):
//! a cast or an answer over it is refused `message_too_large` and nothing changes — on SQLite
//! and on PostgreSQL, over AMQP and HTTP.

mod common;

use std::time::Duration;

use common::{load_fixture, release_id, Backend, Bridge};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

/// Small enough that the `env-multinode` cast (5 entries) is over it, large enough for the
/// answers that load the fixture.
const LIMIT: usize = 3000;

async fn small_limit(backend: Backend) -> Bridge {
    Bridge::start_with(backend, |settings| settings.amqp.max_message_bytes = LIMIT).await
}

fn upgrade_target(releases: &[(String, String, i64)]) -> i64 {
    release_id(releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2")
}

/// The cluster as `get_cluster` shows it, without its nodes' details.
async fn cluster_state(bridge: &mut Bridge, cluster: i64) -> (Value, Value, Vec<Value>, Value) {
    let seen = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    let nodes = seen["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| json!([n["id"], n["status"], n["progress"]]))
        .collect();
    (
        seen["status"].clone(),
        seen["pending_release_id"].clone(),
        nodes,
        seen["latest_task"].clone(),
    )
}

fn assert_too_large(code: &str, message: &str, what: &str) {
    assert_too_large_for(code, message, what, LIMIT);
}

fn assert_too_large_for(code: &str, message: &str, what: &str, limit: usize) {
    assert_eq!(code, "message_too_large", "{message}");
    assert!(
        message.starts_with(&format!("the {what} would be "))
            && message.contains(&format!(" bytes, over the limit of {limit} bytes")),
        "names the size and the limit: {message}"
    );
}

/// Waits until every queued message (answers) is published, then checks none is left.
async fn outbox_drains(bridge: &Bridge) {
    bridge
        .rows_until("SELECT COUNT(*) AS n FROM outbox", "an empty outbox", |n| {
            n == 0
        })
        .await;
}

async fn a_cast_over_the_limit_is_refused_and_changes_nothing(backend: Backend) {
    let mut bridge = small_limit(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let target = upgrade_target(&releases);
    let update = json!({"cluster_id": cluster, "release_id": target});
    let before = cluster_state(&mut bridge, cluster).await;

    let (code, message) = bridge.refusal("update_cluster", update.clone()).await;
    assert_too_large(&code, &message, "deploy cast");
    let (code, message) = bridge.refusal("check_update", update.clone()).await;
    assert_too_large(&code, &message, "deploy cast");
    // A rollback casts too: from a failed state it is refused the same way.
    bridge
        .execute(&format!(
            "UPDATE clusters SET status = 'upgrade_error', pending_release_id = {target} WHERE id = {cluster}"
        ))
        .await;
    let failed = cluster_state(&mut bridge, cluster).await;
    let (code, message) = bridge
        .refusal("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_too_large(&code, &message, "deploy cast");

    assert_eq!(cluster_state(&mut bridge, cluster).await, failed);
    assert_eq!(
        (&failed.2, &failed.3),
        (&before.2, &before.3),
        "nodes untouched"
    );
    assert_eq!(bridge.count("tasks").await, 0, "no task");
    assert_eq!(
        bridge.next_cast_within(Duration::from_millis(500)).await,
        None,
        "no cast"
    );
    outbox_drains(&bridge).await;

    // Over HTTP: the update and its dry run answer 413 with the error body.
    bridge
        .execute(&format!(
            "UPDATE clusters SET status = 'operational', pending_release_id = {target} WHERE id = {cluster}"
        ))
        .await;
    let http = Client::new();
    for url in [
        format!(
            "{}/api/clusters/{cluster}/update/?dry_run=true",
            bridge.http
        ),
        format!("{}/api/clusters/{cluster}/update/", bridge.http),
    ] {
        let response = http.put(&url).send().await.expect("HTTP answer");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{url}");
        let body: Value = response.json().await.expect("JSON body");
        assert_too_large(
            body["error"]["code"].as_str().unwrap_or_default(),
            body["error"]["message"].as_str().unwrap_or_default(),
            "deploy cast",
        );
    }
    assert_eq!(bridge.count("tasks").await, 0, "no task");
    let after = cluster_state(&mut bridge, cluster).await;
    assert_eq!(after.0, "operational");
    assert_eq!(after.2, before.2, "nodes untouched");
    outbox_drains(&bridge).await;
    bridge.stop().await;
}

async fn a_cast_within_the_limit_goes_out_once(backend: Backend) {
    // The same update with the limit just at the cast's size: allowed, sent as shown.
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let update = json!({"cluster_id": cluster, "release_id": upgrade_target(&releases)});
    let verdict = bridge.ok("check_update", update.clone()).await;
    assert_eq!(verdict["allowed"], true, "{verdict}");
    let size = serde_json::to_string(&verdict["message"])
        .expect("JSON")
        .len();
    assert!(size > LIMIT, "the fixture's cast is over the small limit");
    bridge.stop().await;

    let mut bridge = Bridge::start_with(backend, |settings| {
        settings.amqp.max_message_bytes = size;
    })
    .await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let update = json!({"cluster_id": cluster, "release_id": upgrade_target(&releases)});
    // The verdict carries the cast and so is over the limit: its answer is the error.
    let (code, message) = bridge.refusal("check_update", update.clone()).await;
    assert_too_large_for(&code, &message, "answer", size);
    let task = bridge.ok("update_cluster", update).await;
    let sent = bridge.next_cast_text().await;
    assert_eq!(sent.len(), size);
    let uuid = task["uuid"].as_str().expect("uuid");
    assert_eq!(
        bridge.stored_cast(uuid).await.as_deref(),
        Some(sent.as_str())
    );
    bridge.stop().await;
}

async fn an_answer_over_the_limit_is_replaced_by_the_error(backend: Backend) {
    let mut bridge = small_limit(backend).await;
    let (cluster, _) = load_fixture(&mut bridge, "env-multinode").await;
    let before = cluster_state(&mut bridge, cluster).await;
    let nodes: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("extra-{i}"), "fqdn": format!("extra-{i}.domain.tld"), "roles": ["compute"]}))
        .collect();
    let args = json!({"cluster_id": cluster, "nodes": nodes});

    // Twenty nodes answer more than the limit: the answer is the error, and the nodes were not
    // added (nothing changed).
    let first = bridge
        .request_with_id("add_nodes", args.clone(), "too-large-1")
        .await;
    assert_eq!(first["ok"], false, "{first}");
    assert_too_large(
        first["error"]["code"].as_str().unwrap_or_default(),
        first["error"]["message"].as_str().unwrap_or_default(),
        "answer",
    );
    assert_eq!(cluster_state(&mut bridge, cluster).await, before);
    // The same request again gets the same answer, from the idempotency record.
    let again = bridge
        .request_with_id("add_nodes", args, "too-large-1")
        .await;
    assert_eq!(again, first);
    assert_eq!(cluster_state(&mut bridge, cluster).await, before);
    outbox_drains(&bridge).await;
    bridge.stop().await;
}

on_both_backends!(
    a_cast_over_the_limit_is_refused_and_changes_nothing,
    a_cast_within_the_limit_goes_out_once,
    an_answer_over_the_limit_is_replaced_by_the_error,
);
