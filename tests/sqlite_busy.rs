//! A SQLite file that another writer holds: the reply waits (SQLITE_BUSY is worth a retry), is
//! requeued rather than dead-lettered, and applies once the file is free. In a file of its own,
//! so the process-wide requeue counter it awaits is this test's alone.

mod common;

use common::{load_fixture, release_id, Backend, Bridge, PATIENCE};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;

/// The count of requeued replies, as `/metrics` shows it (the recorder is process-wide).
fn requeued() -> u64 {
    let text = astute_bridge::telemetry::metrics_handle()
        .expect("the metrics recorder")
        .render();
    text.lines()
        .find(|l| l.starts_with("astute_bridge_replies_total{outcome=\"requeued\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_sqlite_file_delays_a_reply_but_loses_nothing() {
    let mut bridge = Bridge::start(Backend::Sqlite).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let to = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": to}),
        )
        .await;
    let uuid = task["uuid"].as_str().expect("uuid").to_string();
    bridge.next_cast().await;
    // The same bridge again with a one-second busy timeout, so each attempt gives up quickly.
    bridge.halt().await;
    bridge.settings.database.connect_timeout_secs = 1;
    let restarted = bridge.start_replica().await;

    // Another writer takes the file's write lock and holds it.
    let writer = bridge.db.begin().await.expect("begin");
    writer
        .execute_unprepared("UPDATE releases SET name = name")
        .await
        .expect("take the write lock");
    bridge
        .reply(json!({"task_uuid": uuid, "status": "running", "progress": 40}))
        .await;
    let deadline = std::time::Instant::now() + PATIENCE;
    while requeued() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reply was never requeued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    writer.commit().await.expect("release the write lock");

    bridge
        .cluster_until(cluster, "progress 40", |c| {
            c["latest_task"]["progress"] == 40
        })
        .await;
    let dlq = bridge.settings.amqp.dead_letter_queue.clone();
    assert_eq!(bridge.queue_depth(&dlq).await, 0, "nothing dead-lettered");
    restarted.stop().await;
    bridge.stop().await;
}
