//! Replies that used to loop or be lost: a NUL byte in the failure text, a node entry with a bad
//! uid, a reply the database refuses, a reply that keeps failing transiently, and the order of
//! one task's replies when one of them is requeued. The database's refusals are real: triggers
//! the tests install on the bridge's own database.

mod common;

use common::{dead_letter_reason, load_fixture, release_id, Backend, Bridge};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};

/// Starts an upgrade of the fixture cluster `env-multinode`; returns (cluster, task uuid).
async fn running_upgrade(bridge: &mut Bridge) -> (i64, String) {
    let (cluster, releases) = load_fixture(bridge, "env-multinode").await;
    let to = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": to}),
        )
        .await;
    let uuid = task["uuid"].as_str().expect("uuid").to_string();
    bridge.next_cast().await;
    (cluster, uuid)
}

fn node_ids(cluster: &Value) -> Vec<i64> {
    cluster["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["id"].as_i64())
        .collect()
}

fn node(cluster: &Value, id: i64) -> &Value {
    cluster["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"].as_i64() == Some(id)))
        .unwrap_or_else(|| panic!("no node {id} in {cluster}"))
}

/// Stops the bridge and checks that no reply was left behind in `nailgun` (a reply requeued
/// forever would be), then cleans up.
async fn stop_with_nothing_left(mut bridge: Bridge) {
    bridge.halt().await;
    let nailgun = bridge.settings.amqp.nailgun_queue.clone();
    assert_eq!(
        bridge.queue_depth(&nailgun).await,
        0,
        "a reply was still waiting to be applied"
    );
    bridge.stop().await;
}

/// The text columns of a query, in row order.
async fn texts(bridge: &Bridge, sql: &str) -> Vec<String> {
    bridge
        .db
        .query_all_raw(Statement::from_string(
            bridge.db.get_database_backend(),
            sql.to_string(),
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| row.try_get::<String>("", "t").expect("t"))
        .collect()
}

async fn a_nul_byte_in_the_failure_text_is_recorded(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, uuid) = running_upgrade(&mut bridge).await;
    let seen = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    let broken = node_ids(&seen)[0];

    // A Puppet log line with a NUL byte, in a node's error_msg and in the task's error.
    bridge
        .reply(
            json!({"task_uuid": uuid, "nodes": [{"uid": broken, "status": "error",
                      "error_type": "deploy", "error_msg": "Puppet\u{0} failed"}]}),
        )
        .await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "error", "error": "Deployment\u{0} failed"}))
        .await;
    let ended = bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    assert_eq!(ended["latest_task"]["status"], "error");
    assert_eq!(
        ended["latest_task"]["message"], "Upgrade has failed. Deployment\\u0000 failed",
        "the real failure is recorded, the NUL written out"
    );
    assert_eq!(node(&ended, broken)["status"], "error");
    assert_eq!(node(&ended, broken)["error_msg"], "Puppet\\u0000 failed");
    let (_, note) = bridge.next_notification().await;
    assert_eq!(
        note["payload"]["message"],
        format!(
            "Failed to deploy node '{}': Puppet\\u0000 failed",
            node(&ended, broken)["name"].as_str().unwrap_or_default()
        )
    );
    let (_, note) = bridge.next_notification().await;
    assert_eq!(
        note["payload"]["message"],
        "Upgrade has failed. Deployment\\u0000 failed"
    );
    let dlq = bridge.settings.amqp.dead_letter_queue.clone();
    assert_eq!(bridge.queue_depth(&dlq).await, 0, "nothing dead-lettered");
    stop_with_nothing_left(bridge).await;
}

async fn a_bad_uid_is_dead_lettered_and_the_rest_applies(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, uuid) = running_upgrade(&mut bridge).await;
    let seen = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    let ready = node_ids(&seen)[1];

    let bad = json!({"uid": "node-x", "status": "error", "error_msg": "lost"});
    bridge
        .reply(json!({"task_uuid": uuid, "status": "error", "error": "Deployment failed",
                      "nodes": [bad, {"uid": ready.to_string(), "status": "ready", "progress": 100}]}))
        .await;
    let ended = bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    assert_eq!(ended["latest_task"]["status"], "error");
    assert_eq!(
        ended["latest_task"]["message"],
        "Upgrade has failed. Deployment failed"
    );
    assert_eq!(
        node(&ended, ready)["status"],
        "ready",
        "the valid node entry applied"
    );

    let dead = bridge.next_dead_letter().await;
    let reason = dead_letter_reason(&dead).expect("an x-bridge-reason header");
    assert!(
        reason.contains("node entry 0") && reason.contains("node-x"),
        "{reason}"
    );
    let body: Value = serde_json::from_slice(&dead.delivery.data).expect("JSON");
    assert_eq!(body["method"], "deploy_resp");
    assert_eq!(body["args"]["task_uuid"], uuid.as_str());
    assert_eq!(
        body["args"]["nodes"],
        json!([bad]),
        "only the bad entry is dead-lettered"
    );
    let dlq = bridge.settings.amqp.dead_letter_queue.clone();
    assert_eq!(bridge.queue_depth(&dlq).await, 0, "one dead letter");
    stop_with_nothing_left(bridge).await;
}

async fn a_reply_the_database_refuses_is_parked_with_its_reason(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, uuid) = running_upgrade(&mut bridge).await;
    match backend {
        Backend::Postgres => {
            bridge
                .execute(
                    "CREATE FUNCTION refuse_37() RETURNS trigger AS $$ BEGIN \
                     IF NEW.progress = 37 THEN \
                       RAISE EXCEPTION 'progress 37 refused' USING ERRCODE = '23514'; \
                     END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
                )
                .await;
            bridge
                .execute(
                    "CREATE TRIGGER refuse_37 BEFORE UPDATE ON tasks \
                     FOR EACH ROW EXECUTE FUNCTION refuse_37()",
                )
                .await;
        }
        Backend::Sqlite => {
            bridge
                .execute(
                    "CREATE TRIGGER refuse_37 BEFORE UPDATE ON tasks WHEN NEW.progress = 37 \
                     BEGIN SELECT RAISE(ABORT, 'progress 37 refused'); END",
                )
                .await;
        }
    }

    let refused = json!({"method": "deploy_resp",
                         "args": {"task_uuid": uuid, "status": "running", "progress": 37}})
    .to_string();
    bridge.reply_raw(refused.as_bytes()).await;
    let dead = bridge.next_dead_letter().await;
    assert_eq!(
        String::from_utf8_lossy(&dead.delivery.data),
        refused,
        "the refused reply is parked as it came"
    );
    let reason = dead_letter_reason(&dead).expect("an x-bridge-reason header");
    assert!(
        reason.contains("the database refused the reply") && reason.contains("progress 37 refused"),
        "{reason}"
    );
    assert!(
        reason.contains("requeued 0 times"),
        "a refusal is not retried: {reason}"
    );

    // The lane goes on with the task's next reply.
    bridge
        .reply(json!({"task_uuid": uuid, "status": "running", "progress": 50}))
        .await;
    bridge
        .cluster_until(cluster, "progress 50", |c| {
            c["latest_task"]["progress"] == 50
        })
        .await;
    stop_with_nothing_left(bridge).await;
}

/// Installs a trigger that fails updates of `tasks` matching `condition` with a serialization
/// failure (a transient error) while `fails` says so, counting every attempt in the sequence
/// `attempts`.
async fn fail_transiently(bridge: &Bridge, table: &str, condition: &str, fails: &str) {
    bridge.execute("CREATE SEQUENCE attempts").await;
    bridge
        .execute(&format!(
            "CREATE FUNCTION fail_transiently() RETURNS trigger AS $$ DECLARE n bigint; BEGIN \
             IF {condition} THEN \
               n := nextval('attempts'); \
               IF {fails} THEN \
                 RAISE EXCEPTION 'attempt % not now', n USING ERRCODE = '40001'; \
               END IF; \
             END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        ))
        .await;
    bridge
        .execute(&format!(
            "CREATE TRIGGER fail_transiently BEFORE UPDATE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION fail_transiently()"
        ))
        .await;
}

async fn attempts(bridge: &Bridge) -> i64 {
    bridge
        .rows_until(
            "SELECT last_value AS n FROM attempts",
            "the attempts counter",
            |_| true,
        )
        .await
}

/// PostgreSQL only: SQLite has no way to fail one statement transiently on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_failing_transiently_forever_is_parked_after_bounded_requeues() {
    let mut bridge = Bridge::start(Backend::Postgres).await;
    let (cluster, uuid) = running_upgrade(&mut bridge).await;
    fail_transiently(&bridge, "tasks", "NEW.progress = 37", "true").await;

    bridge
        .reply(json!({"task_uuid": uuid, "status": "running", "progress": 37}))
        .await;
    let dead = bridge.next_dead_letter().await;
    let reason = dead_letter_reason(&dead).expect("an x-bridge-reason header");
    assert!(
        reason.contains("requeued 5 times") && reason.contains("not now"),
        "{reason}"
    );
    // 3 attempts in place, requeued 5 times: 6 rounds.
    assert_eq!(attempts(&bridge).await, 18, "a bounded number of attempts");
    let seen = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(seen["latest_task"]["status"], "running");
    assert_eq!(seen["latest_task"]["progress"], 0, "nothing applied");
    stop_with_nothing_left(bridge).await;
}

/// PostgreSQL only: SQLite has no way to fail one statement transiently on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeued_reply_is_not_overtaken_by_a_later_one_of_its_task() {
    let mut bridge = Bridge::start(Backend::Postgres).await;
    let (cluster, uuid) = running_upgrade(&mut bridge).await;
    // The first reply fails often enough to leave its batch and be requeued (3 attempts in
    // the batch, one alone), then goes through. It is the only one to move a node, so its
    // write is seen even when both replies share a batch (whose task row is written once).
    let node = node_ids(
        &bridge
            .ok("get_cluster", json!({"cluster_id": cluster}))
            .await,
    )[0];
    fail_transiently(
        &bridge,
        "nodes",
        &format!("NEW.id = {node} AND NEW.progress = 10"),
        "n <= 4",
    )
    .await;
    bridge
        .execute("CREATE TABLE applied_log (id SERIAL PRIMARY KEY, message TEXT NOT NULL)")
        .await;
    bridge
        .execute(
            "CREATE FUNCTION log_message() RETURNS trigger AS $$ BEGIN \
             IF NEW.message IS DISTINCT FROM OLD.message THEN \
               INSERT INTO applied_log (message) VALUES (NEW.message); \
             END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        )
        .await;
    bridge
        .execute(
            "CREATE TRIGGER log_message AFTER UPDATE ON tasks \
             FOR EACH ROW EXECUTE FUNCTION log_message()",
        )
        .await;

    bridge
        .reply(
            json!({"task_uuid": uuid, "status": "running", "progress": 10, "error": "first",
                      "nodes": [{"uid": node.to_string(), "progress": 10}]}),
        )
        .await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "running", "progress": 20, "error": "second"}))
        .await;
    // Both applied: the node moved by the first, the message left by the second (had the
    // second overtaken the first, the first's message would be the last word).
    bridge
        .rows_until(
            &format!(
                "SELECT COUNT(*) AS n FROM tasks t JOIN nodes n ON n.cluster_id = t.cluster_id \
                 WHERE t.uuid = '{uuid}' AND t.message = 'second' AND n.id = {node} \
                 AND n.progress = 10"
            ),
            "both replies applied",
            |n| n == 1,
        )
        .await;
    // Applied alone, each leaves its message; applied together (both back in one batch), the
    // task's row is written once, with the second's.
    let log = texts(&bridge, "SELECT message AS t FROM applied_log ORDER BY id").await;
    assert!(
        log == ["first", "second"] || log == ["second"],
        "applied in delivery order: {log:?}"
    );
    assert!(attempts(&bridge).await >= 5, "the first reply was requeued");
    let seen = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(seen["latest_task"]["message"], "second");
    assert_eq!(seen["latest_task"]["progress"], 20);
    let dlq = bridge.settings.amqp.dead_letter_queue.clone();
    assert_eq!(bridge.queue_depth(&dlq).await, 0, "nothing dead-lettered");
    stop_with_nothing_left(bridge).await;
}

/// A reply over `amqp.max_reply_bytes` (a huge node list naming a real task) is dead-lettered
/// unread, with its size as the reason, and changes nothing; the next reply applies.
async fn a_reply_over_the_size_limit_is_dead_lettered_unread(backend: Backend) {
    let mut bridge = Bridge::start_with(backend, |s| s.amqp.max_reply_bytes = 64 * 1024).await;
    let (cluster, uuid) = running_upgrade(&mut bridge).await;
    let before = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    let nodes: Vec<Value> = (0..20_000)
        .map(|i| json!({"uid": i, "status": "error", "progress": 100}))
        .collect();
    let huge = json!({"method": "deploy_resp",
                      "args": {"task_uuid": uuid, "status": "error", "progress": 100, "nodes": nodes}})
    .to_string();
    assert!(huge.len() > 64 * 1024);
    bridge.reply_raw(huge.as_bytes()).await;
    let dead = bridge.next_dead_letter().await;
    let reason = dead_letter_reason(&dead).expect("a reason");
    assert!(reason.contains("max_reply_bytes"), "{reason}");
    assert_eq!(dead.delivery.data.len(), huge.len(), "kept as it came");

    bridge
        .reply(json!({"task_uuid": uuid, "status": "running", "progress": 30}))
        .await;
    let seen = bridge
        .cluster_until(cluster, "the next reply applied", |c| {
            c["latest_task"]["progress"] == 30
        })
        .await;
    assert_eq!(
        seen["status"], before["status"],
        "the huge reply changed nothing"
    );
    assert_eq!(seen["latest_task"]["status"], "running");
    stop_with_nothing_left(bridge).await;
}

on_both_backends!(
    a_reply_over_the_size_limit_is_dead_lettered_unread,
    a_nul_byte_in_the_failure_text_is_recorded,
    a_bad_uid_is_dead_lettered_and_the_rest_applies,
    a_reply_the_database_refuses_is_parked_with_its_reason,
);
