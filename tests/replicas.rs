//! Several bridges on one PostgreSQL database and one set of queues: every request and reply is
//! taken by whichever bridge is free, and the effects still happen exactly once.

mod common;

use common::{load_fixture, release_id, Backend, Bridge};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_start_one_task_and_end_it_once() {
    let mut bridge = Bridge::start(Backend::Postgres).await;
    let replica = bridge.start_replica().await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let target = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");

    // Twelve different update requests for one cluster, racing on two bridges: one wins.
    let requests: Vec<(&str, serde_json::Value, String)> = (0..12)
        .map(|_| {
            (
                "update_cluster",
                json!({"cluster_id": cluster, "release_id": target}),
                uuid::Uuid::new_v4().to_string(),
            )
        })
        .collect();
    let answers = bridge.requests_at_once(&requests).await;
    let winners: Vec<_> = answers.iter().filter(|a| a["ok"] == true).collect();
    assert_eq!(winners.len(), 1, "exactly one update starts: {answers:?}");
    for loser in answers.iter().filter(|a| a["ok"] != true) {
        assert_eq!(loser["error"]["code"], "conflict", "{loser}");
    }
    assert_eq!(bridge.count("tasks").await, 1);
    let uuid = winners[0]["result"]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let cast = bridge.next_cast().await;
    assert_eq!(cast["args"]["task_uuid"], uuid.as_str());

    // The same request (one message id) delivered six times at once: executed once.
    let again: Vec<(&str, serde_json::Value, String)> = (0..6)
        .map(|_| {
            (
                "add_notification",
                json!({"topic": "warning", "message": "maintenance window", "cluster_id": cluster}),
                "one-message-id".to_string(),
            )
        })
        .collect();
    let answers = bridge.requests_at_once(&again).await;
    assert!(
        answers.iter().all(|a| a == &answers[0] && a["ok"] == true),
        "{answers:?}"
    );
    assert_eq!(bridge.count("notifications").await, 1);

    // Progress replies and the final one, taken by both bridges: the task ends once.
    let nodes = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_i64().expect("id"))
        .collect::<Vec<_>>();
    for step in 1..=20 {
        let node = nodes[step % nodes.len()];
        bridge
            .reply(json!({"task_uuid": uuid, "progress": step * 4,
                          "nodes": [{"uid": node, "status": "deploying", "progress": step * 4}]}))
            .await;
    }
    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100}))
        .await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100}))
        .await;
    let done = bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    assert_eq!(done["release_id"].as_i64(), Some(target));
    assert_eq!(done["latest_task"]["progress"], 100);

    // Both bridges stop gracefully: whatever they took is applied and acked, or back in the
    // queue. An empty queue means every reply above was applied, so the count is final.
    replica.stop().await;
    bridge.halt().await;
    let nailgun = bridge.settings.amqp.nailgun_queue.clone();
    assert_eq!(
        bridge.queue_depth(&nailgun).await,
        0,
        "every reply was applied"
    );
    assert_eq!(
        bridge
            .rows_until(
                "SELECT COUNT(*) AS n FROM notifications WHERE topic = 'done'",
                "a count",
                |_| true
            )
            .await,
        1,
        "one done notification, whichever bridge applied each final reply"
    );
    bridge.stop().await;
}

/// Replies of one task taken by two bridges may be applied in either order (each under the
/// task's row lock). The reply rules keep every write monotonic whatever the order: no task
/// progress, node status or node progress at one status is ever written lower than it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_spread_over_two_bridges_never_take_state_back() {
    let mut bridge = Bridge::start(Backend::Postgres).await;
    let replica = bridge.start_replica().await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let target = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": target}),
        )
        .await;
    let uuid = task["uuid"].as_str().expect("uuid").to_string();
    bridge.next_cast().await;

    // Every write to a task or a node is logged with the values before and after it.
    for sql in [
        "CREATE TABLE task_log (old_progress INT, new_progress INT)",
        "CREATE FUNCTION log_task() RETURNS trigger AS $$ BEGIN \
         INSERT INTO task_log VALUES (OLD.progress, NEW.progress); RETURN NEW; END $$ \
         LANGUAGE plpgsql",
        "CREATE TRIGGER log_task AFTER UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION log_task()",
        "CREATE FUNCTION node_rank(status TEXT) RETURNS INT AS $$ SELECT CASE status \
         WHEN 'discover' THEN 1 WHEN 'provisioning' THEN 2 WHEN 'provisioned' THEN 3 \
         WHEN 'deploying' THEN 4 WHEN 'ready' THEN 5 WHEN 'error' THEN 6 END $$ LANGUAGE sql",
        "CREATE TABLE node_log (old_rank INT, new_rank INT, old_progress INT, new_progress INT)",
        "CREATE FUNCTION log_node() RETURNS trigger AS $$ BEGIN \
         INSERT INTO node_log VALUES (node_rank(OLD.status), node_rank(NEW.status), \
         OLD.progress, NEW.progress); RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER log_node AFTER UPDATE ON nodes FOR EACH ROW EXECUTE FUNCTION log_node()",
    ] {
        bridge.execute(sql).await;
    }

    let nodes = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_i64().expect("id"))
        .collect::<Vec<_>>();
    for step in 1..=30 {
        let node = nodes[step % nodes.len()];
        let status = if step > 20 { "ready" } else { "deploying" };
        bridge
            .reply(json!({"task_uuid": uuid, "progress": step * 3,
                          "nodes": [{"uid": node, "status": status, "progress": step * 3}]}))
            .await;
    }
    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100}))
        .await;
    let done = bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    replica.stop().await;
    bridge.halt().await;
    let nailgun = bridge.settings.amqp.nailgun_queue.clone();
    assert_eq!(
        bridge.queue_depth(&nailgun).await,
        0,
        "every reply was applied"
    );

    assert_eq!(done["latest_task"]["progress"], 100);
    assert!(done["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .all(|n| n["status"] == "ready" && n["progress"] == 100));
    let count = |sql: &'static str| bridge.rows_until(sql, "a count", |_| true);
    assert!(count("SELECT COUNT(*) AS n FROM task_log").await > 1);
    assert_eq!(
        count("SELECT COUNT(*) AS n FROM task_log WHERE new_progress < old_progress").await,
        0,
        "the task's progress never went down"
    );
    assert!(count("SELECT COUNT(*) AS n FROM node_log").await > 1);
    assert_eq!(
        count(
            "SELECT COUNT(*) AS n FROM node_log WHERE new_rank < old_rank \
             OR (new_rank = old_rank AND new_progress < old_progress)"
        )
        .await,
        0,
        "no node's status or progress went down"
    );
    assert_eq!(
        count("SELECT COUNT(*) AS n FROM notifications WHERE topic = 'done'").await,
        1
    );
    bridge.stop().await;
}
