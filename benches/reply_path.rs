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
        let rate = replies as f64 / seconds;
        println!(
            "reply_path {name}: {replies} replies for {clusters} tasks in {seconds:.2} s = {rate:.0} replies/s"
        );
        if backend == Backend::Postgres {
            let (messages, lean_seconds) = lean_loop(replies).await;
            let lean_rate = messages as f64 / lean_seconds;
            println!(
                "lean_loop postgres: {messages} messages in {lean_seconds:.2} s = {lean_rate:.0} messages/s; reply_path / lean_loop = {:.2}",
                rate / lean_rate
            );
        }
    }
}

/// The yardstick: the same shape without any bridge logic. Consume with manual acks (prefetch
/// 200), one PostgreSQL transaction per message (one INSERT), publish with a confirm, then ack;
/// up to 64 messages in flight over 8 connections.
async fn lean_loop(messages: usize) -> (usize, f64) {
    use futures_util::StreamExt;
    use lapin::options::*;
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    use sea_orm::{ConnectOptions, ConnectionTrait, Database, TransactionTrait};
    use std::sync::Arc;

    let prefix = common::fresh_prefix('l');
    let admin_url = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into());
    let admin = Database::connect(admin_url.as_str())
        .await
        .expect("PostgreSQL");
    admin
        .execute_unprepared(&format!(r#"CREATE DATABASE "{prefix}""#))
        .await
        .expect("create db");
    let url = admin_url.replacen("/test?", &format!("/{prefix}?"), 1);
    let mut options = ConnectOptions::new(url);
    options.max_connections(8).sqlx_logging(false);
    let db = Database::connect(options).await.expect("lean db");
    db.execute_unprepared("CREATE TABLE seen (id SERIAL PRIMARY KEY, body TEXT NOT NULL)")
        .await
        .expect("table");

    let conn = Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        ConnectionProperties::default(),
    )
    .await
    .expect("broker");
    let (inbox, outbox) = (format!("{prefix}.in"), format!("{prefix}.out"));
    let setup = conn.create_channel().await.expect("channel");
    setup
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    for q in [&inbox, &outbox] {
        setup
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare");
    }
    let props = BasicProperties::default().with_delivery_mode(2);
    for i in 0..messages {
        let body = format!("{{\"n\": {i}}}");
        setup
            .basic_publish(
                "".into(),
                inbox.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props.clone(),
            )
            .await
            .expect("publish");
    }
    setup.wait_for_confirms().await.expect("confirms");

    let consume = conn.create_channel().await.expect("channel");
    consume
        .basic_qos(200, BasicQosOptions::default())
        .await
        .expect("qos");
    let publish = Arc::new(conn.create_channel().await.expect("channel"));
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let mut consumer = consume
        .basic_consume(
            inbox.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..messages {
        let delivery = consumer.next().await.expect("open").expect("delivery");
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .expect("permit");
        let (db, publish, outbox) = (db.clone(), Arc::clone(&publish), outbox.clone());
        workers.spawn(async move {
            let body = String::from_utf8_lossy(&delivery.data).to_string();
            let txn = db.begin().await.expect("begin");
            txn.execute_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "INSERT INTO seen (body) VALUES ($1)",
                [body.clone().into()],
            ))
            .await
            .expect("insert");
            txn.commit().await.expect("commit");
            publish
                .basic_publish(
                    "".into(),
                    outbox.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
            drop(permit);
        });
    }
    while workers.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    for q in [&inbox, &outbox] {
        let _ = setup
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    db.close().await.ok();
    admin
        .execute_unprepared(&format!(
            r#"DROP DATABASE IF EXISTS "{prefix}" WITH (FORCE)"#
        ))
        .await
        .expect("drop db");
    (messages, seconds)
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
