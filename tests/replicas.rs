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
