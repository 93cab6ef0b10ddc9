//! A message the broker refuses never blocks the messages behind it: it is retried with a
//! growing pause, then set aside (parked) with the broker's words; a parked cast fails its
//! task; `astute-bridge outbox list|retry` show and retry parked messages.

mod common;

use std::process::Command;

use astute_bridge::core::deploy_message::{
    deploy_message, ClusterFacts, DeployPlan, NodeFacts, ReleaseFacts,
};
use astute_bridge::core::enums::{ClusterMode, OperatingSystem};
use common::proxy::{through, upstream_of, Proxy};
use common::{amqp_url, load_fixture, release_id, Backend, Bridge};
use lapin::options::{ExchangeDeclareOptions, ExchangeDeleteOptions};
use lapin::types::FieldTable;
use lapin::ExchangeKind;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_astute-bridge");

/// Runs the binary against the bridge's broker, names and database; returns its stdout.
fn cli(bridge: &Bridge, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(args)
        .envs(bridge.binary_env())
        .env(
            "ASTUTE_BRIDGE__DATABASE__URL",
            bridge.settings.database.url.expose(),
        )
        .output()
        .expect("run astute-bridge");
    assert!(
        output.status.success(),
        "astute-bridge {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Astute's exchange replaced by one nobody may publish to (internal): the broker closes the
/// channel over every cast, and declaring it again is refused too (it is inequivalent).
async fn a_refused_cast_is_parked_and_fails_its_task(backend: Backend) {
    // Supervised, as `serve` runs it: now and then lapin sends a publish queued behind the
    // broker's channel.close after its close-ok, the broker closes the whole connection, and the
    // bridge starts its session again; the outcome below is the same either way.
    let mut bridge = Bridge::start_supervised(backend, |s| s.outbox.max_attempts = 2).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let target = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let naily = bridge.settings.amqp.naily_exchange.clone();
    bridge
        .channel
        .exchange_delete(naily.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete naily");
    bridge
        .channel
        .exchange_declare(
            naily.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                internal: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare naily as internal");

    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": target}),
        )
        .await;
    let uuid = task["uuid"].as_str().expect("uuid").to_string();
    // Refused twice (1 s apart), then parked; the task fails as an error reply would.
    let failed = bridge
        .cluster_until(cluster, "upgrade_error after the cast was parked", |c| {
            c["status"] == "upgrade_error"
        })
        .await;
    let message = failed["latest_task"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.starts_with("Upgrade has failed. Its deploy cast could not be published"),
        "the task says why: {failed}"
    );
    // Messages behind it still go out: the bridge answers.
    let listed = bridge.ok("list_releases", json!({})).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(releases.len()));
    let (topic, notification) = bridge.next_notification().await;
    assert_eq!(topic, "notifications.error", "{notification}");

    let parked: Value =
        serde_json::from_str(&cli(&bridge, &["outbox", "list"])).expect("outbox list is JSON");
    let parked = parked.as_array().expect("an array").clone();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0]["message_id"], uuid.as_str());
    assert_eq!(parked[0]["failures"], 2);
    let reason = parked[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("ACCESS_REFUSED"),
        "the broker's words: {reason}"
    );

    // Its task has ended: retrying the cast would start a deployment nobody follows.
    let said = cli(&bridge, &["outbox", "retry"]);
    assert!(said.starts_with("0 message(s) put back"), "{said}");
    assert!(said.contains("left parked"), "{said}");

    bridge
        .channel
        .exchange_delete(naily.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete the internal naily");
    bridge.stop().await;
}

/// A row over `amqp.max_message_bytes` (written before the limit was lowered) is parked at
/// once and the rows behind it go out.
async fn a_message_over_the_limit_is_parked_at_once(backend: Backend) {
    let mut bridge = Bridge::start_with(backend, |s| s.amqp.max_message_bytes = 64 * 1024).await;
    let body = format!("{{\"huge\": \"{}\"}}", "x".repeat(100 * 1024));
    let exchange = bridge.settings.amqp.notifications_exchange.clone();
    bridge
        .execute(&format!(
            "INSERT INTO outbox (exchange, routing_key, body, properties, mandatory, attempts, created_at, failures) \
             VALUES ('{exchange}', 'notifications.info', '{body}', '{{\"message_id\": \"too-big\"}}', false, 0, CURRENT_TIMESTAMP, 0)"
        ))
        .await;
    let stored = bridge
        .ok(
            "add_notification",
            json!({"topic": "discover", "message": "behind the big one"}),
        )
        .await;
    assert_eq!(stored["message"], "behind the big one");
    let (_, notification) = bridge.next_notification().await;
    assert_eq!(notification["payload"]["message"], "behind the big one");
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM outbox WHERE parked_at IS NOT NULL",
            "the big message parked",
            |n| n == 1,
        )
        .await;
    let parked: Value =
        serde_json::from_str(&cli(&bridge, &["outbox", "list"])).expect("outbox list is JSON");
    assert_eq!(
        parked[0]["reason"],
        format!(
            "the message is {} bytes, over amqp.max_message_bytes (65536 bytes)",
            body.len()
        )
    );
    // Retried by hand it is parked again at once: the limit still holds.
    let said = cli(
        &bridge,
        &["outbox", "retry", "--id", &parked[0]["id"].to_string()],
    );
    assert!(said.starts_with("1 message(s) put back"), "{said}");
    bridge.ok("list_releases", json!({})).await;
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM outbox WHERE parked_at IS NOT NULL",
            "parked again",
            |n| n == 1,
        )
        .await;
    assert_eq!(bridge.count("outbox").await, 1);
    bridge.stop().await;
}

/// A cast whose stored plan cannot be read (altered by hand, or written by a version whose
/// plans differ) is parked at once with the reason and fails its task; the rows behind it go out.
async fn an_unreadable_plan_is_parked_at_once_and_fails_its_task(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let target = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": target}),
        )
        .await;
    let uuid = task["uuid"].as_str().expect("uuid").to_string();
    let cast = bridge.next_cast().await;
    assert_eq!(cast["args"]["task_uuid"], uuid.as_str());
    // Another cast for the running task, its plan not a plan.
    let naily = bridge.settings.amqp.naily_exchange.clone();
    let key = bridge.settings.amqp.naily_routing_key.clone();
    bridge
        .execute(&format!(
            "INSERT INTO outbox (exchange, routing_key, body, properties, mandatory, attempts, created_at, failures, body_format) \
             VALUES ('{naily}', '{key}', '{{\"nodes\": \"three\"}}', '{{\"message_id\": \"{uuid}\"}}', true, 0, CURRENT_TIMESTAMP, 0, 'deploy_plan')"
        ))
        .await;
    let listed = bridge.ok("list_releases", json!({})).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(releases.len()));
    let failed = bridge
        .cluster_until(cluster, "upgrade_error after the plan was parked", |c| {
            c["status"] == "upgrade_error"
        })
        .await;
    let message = failed["latest_task"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with(
            "Upgrade has failed. Its deploy cast could not be published and was set aside: \
             the stored deploy plan could not be read"
        ),
        "the task says why: {failed}"
    );
    let parked: Value =
        serde_json::from_str(&cli(&bridge, &["outbox", "list"])).expect("outbox list is JSON");
    assert_eq!(parked.as_array().map(Vec::len), Some(1), "{parked}");
    assert_eq!(parked[0]["message_id"], uuid.as_str());
    assert_eq!(parked[0]["body_format"], "deploy_plan");
    assert_eq!(parked[0]["failures"], 1, "parked at the first attempt");
    // The parked row is all the outbox still holds.
    assert_eq!(bridge.count("outbox").await, 1);
    bridge.stop().await;
}

/// A failure after the broker confirmed a cast and before the cast was stored in its task's
/// `cache` leaves its row marked published: the next session stores the cast from the row's
/// plan and removes the row, and does not publish it again.
async fn a_published_cast_left_unstored_is_stored_not_sent_again(backend: Backend) {
    let broker = Proxy::start(&upstream_of(&amqp_url(), 5672)).await;
    let mut bridge = Bridge::start_supervised(backend, |s| {
        s.amqp.url = through(s.amqp.url.expose(), &broker).into()
    })
    .await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let target = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": target}),
        )
        .await;
    let uuid = task["uuid"].as_str().expect("uuid").to_string();
    assert_eq!(bridge.next_cast().await["args"]["task_uuid"], uuid.as_str());
    assert!(bridge.stored_cast(&uuid).await.is_some());

    // As the failure leaves it: the cache empty, the row marked published.
    let plan = DeployPlan {
        task_uuid: uuid.clone(),
        cluster: ClusterFacts {
            id: cluster as i32,
            mode: ClusterMode::Multinode,
            fuel_version: "5.1".into(),
            attributes: serde_json::Map::new(),
        },
        deployed: ReleaseFacts {
            version: "2014.1.1-5.0.2".into(),
            operating_system: OperatingSystem::Ubuntu,
            repo_metadata: json!({"nailgun": "http://10.20.0.2:8080/ubuntu"}),
            puppet_modules_source: "rsync://10.20.0.2:/puppet/modules/".into(),
            puppet_manifests_source: "rsync://10.20.0.2:/puppet/manifests/".into(),
        },
        previous_version: "2014.1-5.0".into(),
        nodes: vec![NodeFacts {
            id: 1,
            name: "node-1".into(),
            fqdn: "node-1.domain.tld".into(),
            roles: vec!["controller".into()],
            online: true,
        }],
    };
    let expected = deploy_message(&plan).expect("the cast");
    let naily = bridge.settings.amqp.naily_exchange.clone();
    let key = bridge.settings.amqp.naily_routing_key.clone();
    bridge
        .execute(&format!(
            "UPDATE tasks SET cache = NULL WHERE uuid = '{uuid}'"
        ))
        .await;
    bridge
        .execute(&format!(
            "INSERT INTO outbox (exchange, routing_key, body, properties, mandatory, attempts, created_at, failures, body_format, published_at) \
             VALUES ('{naily}', '{key}', '{}', '{{\"message_id\": \"{uuid}\"}}', true, 0, CURRENT_TIMESTAMP, 0, 'deploy_plan', CURRENT_TIMESTAMP)",
            serde_json::to_string(&plan).expect("the plan")
        ))
        .await;
    // The broker connection cut: the bridge starts a new session, whose relay looks for it.
    broker.cut();
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM outbox",
            "the published row removed",
            |n| n == 0,
        )
        .await;
    assert_eq!(
        bridge.stored_cast(&uuid).await.as_deref(),
        Some(expected.as_str())
    );

    // Not published again: the next cast on `naily` is the rollback's.
    bridge
        .reply(json!({"task_uuid": uuid, "status": "error", "progress": 100}))
        .await;
    bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    let rollback = bridge
        .ok("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(
        bridge.next_cast().await["args"]["task_uuid"],
        rollback["uuid"]
    );
    bridge.stop().await;
}

on_both_backends!(
    a_published_cast_left_unstored_is_stored_not_sent_again,
    a_refused_cast_is_parked_and_fails_its_task,
    a_message_over_the_limit_is_parked_at_once,
    an_unreadable_plan_is_parked_at_once_and_fails_its_task,
);
