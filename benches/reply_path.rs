//! Throughput of the reply path: Astute's `deploy_resp` replies applied per second, each in its
//! own transaction with its ack after the commit, on PostgreSQL and SQLite.
//!
//! Run: `cargo bench --bench reply_path` (RabbitMQ and PostgreSQL running, as for the tests).
//! `BENCH_CLUSTERS`, `BENCH_STEPS` and `BENCH_BACKENDS` (`postgres,sqlite`) change the load.
//!
//! Set-up (not timed): releases, clusters of five nodes, one running upgrade per cluster; the
//! bridge is then stopped and every reply is queued on `nailgun`: for each step, one reply per
//! task moving one node's progress up, then one `ready` per task. Timed: a bridge starts on the
//! same database (started, then timed) and drains the queue until every task is `ready`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use astute_bridge::app::Application;
use common::{Backend, Bridge};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let clusters = env_number("BENCH_CLUSTERS", 40);
    let steps = env_number("BENCH_STEPS", 250);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    for name in backends.split(',') {
        let backend = match name.trim() {
            "postgres" => Backend::Postgres,
            "sqlite" => Backend::Sqlite,
            other => panic!("unknown backend '{other}'"),
        };
        let (replies, seconds) = run(backend, clusters, steps).await;
        println!(
            "reply_path {name}: {replies} replies for {clusters} tasks in {seconds:.2} s = {:.0} replies/s",
            replies as f64 / seconds
        );
    }
}

async fn run(backend: Backend, clusters: usize, steps: usize) -> (usize, f64) {
    let mut bridge = Bridge::start(backend).await;
    let from = bridge
        .ok(
            "create_release",
            json!({"name": "Icehouse", "version": "2014.1-5.0", "operating_system": "Ubuntu"}),
        )
        .await["id"]
        .clone();
    let to = bridge
        .ok(
            "create_release",
            json!({"name": "Icehouse", "version": "2014.1.1-5.0.2", "operating_system": "Ubuntu",
                   "can_update_from_versions": ["2014.1-5.0"]}),
        )
        .await["id"]
        .clone();
    let mut tasks = Vec::with_capacity(clusters);
    for c in 0..clusters {
        let cluster = bridge
            .ok(
                "create_cluster",
                json!({"name": format!("env-{c}"), "release_id": from, "mode": "multinode", "status": "operational"}),
            )
            .await["id"]
            .clone();
        let nodes = (0..5)
            .map(|n| {
                json!({"name": format!("node-{c}-{n}"), "fqdn": format!("node-{c}-{n}.domain.tld"),
                            "roles": [if n == 0 { "controller" } else { "compute" }]})
            })
            .collect::<Vec<_>>();
        let added = bridge
            .ok("add_nodes", json!({"cluster_id": cluster, "nodes": nodes}))
            .await;
        let node_ids: Vec<i64> = added
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["id"].as_i64().expect("id"))
            .collect();
        let task = bridge
            .ok(
                "update_cluster",
                json!({"cluster_id": cluster, "release_id": to}),
            )
            .await;
        bridge.next_cast().await;
        tasks.push((task["uuid"].as_str().expect("uuid").to_string(), node_ids));
    }
    bridge.halt().await;

    let mut queued = 0;
    for step in 1..=steps {
        for (uuid, nodes) in &tasks {
            let node = nodes[step % nodes.len()];
            let progress = step * 99 / steps;
            bridge
                .reply(json!({"task_uuid": uuid, "nodes": [{"uid": node.to_string(), "status": "deploying", "progress": progress}]}))
                .await;
            queued += 1;
        }
    }
    for (uuid, _) in &tasks {
        bridge
            .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100}))
            .await;
        queued += 1;
    }

    let app = Application::build(bridge.settings.clone())
        .await
        .expect("the measured bridge starts");
    let stop = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));
    bridge
        .rows_until_within(
            "SELECT COUNT(*) AS n FROM tasks WHERE status = 'ready'",
            "every task ready",
            |n| n == clusters as i64,
            std::time::Duration::from_secs(900),
        )
        .await;
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    running
        .await
        .expect("bridge task")
        .expect("the measured bridge stops cleanly");
    let nailgun = bridge.settings.amqp.nailgun_queue.clone();
    assert_eq!(
        bridge.queue_depth(&nailgun).await,
        0,
        "every reply was consumed"
    );
    bridge.stop().await;
    (queued, seconds)
}
