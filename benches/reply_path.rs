//! Throughput and latency of the reply path: Astute's `deploy_resp` replies applied per second
//! on PostgreSQL and SQLite, against a lean unbatched loop measured in the same run.
//!
//! Run: `cargo bench --bench reply_path` (RabbitMQ and PostgreSQL running, as for the tests).
//! The load is the shape of a Nailgun comparison: `BENCH_TASKS` (100) tasks of `BENCH_NODES` (5)
//! nodes, each node reporting `BENCH_STEPS` (19) progress steps, then `ready` per node, then
//! `ready` per task. `BENCH_BACKENDS` (`postgres,sqlite`) picks the databases;
//! `BENCH_LATENCY_REPLIES` (2000) and `BENCH_LATENCY_RATE` (500 per second) shape the latency
//! phase; `BENCH_REPLY_WORKERS` and `BENCH_PREFETCH` override the bridge's settings for an
//! experiment. `BENCH_SHORT=1` runs a small load (for CI): it checks the end state, not the speed.
//! `BENCH_HISTORY=1` runs each backend twice, on an empty database and on one seeded with a long
//! history (10,000 environments each with a running task and 3 nodes, 100,000 ended tasks,
//! 1,000,000 notifications, 100,000 audit rows, 100,000 idempotency keys; a small history with
//! `BENCH_SHORT=1`), and prints both runs' figures and their ratios.
//!
//! Requests (both runs). After the drain, 400 requests one after another, each timed from
//! publish to answer: `get_cluster`, a cluster's newest notifications, the newest unread ones,
//! and a page of clusters, in turn.
//!
//! Throughput (backlog drain). Set-up, not timed: releases, clusters, one running upgrade per
//! cluster; the bridge is then stopped and every reply is queued on `nailgun`. Timed: a bridge
//! starts on the same database and drains the queue until every task is `ready`. Then the end
//! state is checked: every task and node `ready` at 100 %, one `done` notification per task,
//! the queue empty.
//!
//! Latency (paced). With the bridge running, replies to further running tasks are published at
//! a steady rate, each moving one node's progress up. A poller reads those nodes' progress every
//! 2 ms; a reply's latency is from just before its publish to the first poll that sees its
//! progress stored. The bridge acks a reply right after the commit that stores it, so this is
//! published → committed, within one poll period of published → acked.
//!
//! Yardstick (PostgreSQL). The same number of messages, with the same bodies, consumed with
//! manual acks (prefetch 200), each in its own transaction with one INSERT, acked after the
//! commit; up to 64 in flight over 8 connections. No bridge logic, no batching.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use astute_bridge::app::Application;
use common::seed::{seed, History};
use common::{Backend, Bridge};
use lapin::options::BasicPublishOptions;
use lapin::BasicProperties;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bench's load.
#[derive(Clone, Copy)]
struct Load {
    tasks: usize,
    nodes: usize,
    steps: usize,
    latency_tasks: usize,
    latency_replies: usize,
    latency_rate: usize,
}

impl Load {
    fn from_env() -> Load {
        let short = std::env::var("BENCH_SHORT").is_ok_and(|v| v == "1");
        let pick = |name, full, small| env_number(name, if short { small } else { full });
        Load {
            tasks: pick("BENCH_TASKS", 100, 6),
            nodes: pick("BENCH_NODES", 5, 3),
            steps: pick("BENCH_STEPS", 19, 4),
            latency_tasks: pick("BENCH_LATENCY_TASKS", 10, 2),
            latency_replies: pick("BENCH_LATENCY_REPLIES", 2000, 60),
            latency_rate: pick("BENCH_LATENCY_RATE", 500, 200),
        }
    }

    /// Replies of the throughput phase.
    fn replies(&self) -> usize {
        self.tasks * (self.nodes * self.steps + self.nodes + 1)
    }
}

/// What one backend's run measured.
struct Measured {
    replies: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    requests: Vec<Duration>,
    bodies: Vec<Vec<u8>>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.replies as f64 / self.seconds
    }
}

/// The history `BENCH_HISTORY=1` seeds.
fn history_from_env() -> Option<History> {
    if !std::env::var("BENCH_HISTORY").is_ok_and(|v| v == "1") {
        return None;
    }
    let short = std::env::var("BENCH_SHORT").is_ok_and(|v| v == "1");
    Some(if short {
        History {
            clusters: 50,
            nodes_per_cluster: 3,
            ended_tasks: 500,
            notifications: 5_000,
            audit_rows: 500,
            processed_requests: 500,
        }
    } else {
        History {
            clusters: 10_000,
            nodes_per_cluster: 3,
            ended_tasks: 100_000,
            notifications: 1_000_000,
            audit_rows: 100_000,
            processed_requests: 100_000,
        }
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let load = Load::from_env();
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    println!(
        "load: {} tasks x {} nodes x ({} progress steps + ready per node) + ready per task = {} replies",
        load.tasks,
        load.nodes,
        load.steps,
        load.replies()
    );
    let history = history_from_env();
    for name in backends.split(',') {
        let backend = match name.trim() {
            "postgres" => Backend::Postgres,
            "sqlite" => Backend::Sqlite,
            other => panic!("unknown backend '{other}'"),
        };
        let measured = run(backend, load, None).await;
        report(name, "", load, &measured);
        if backend == Backend::Postgres {
            let lean_seconds = lean_loop(&measured.bodies).await;
            let lean_rate = measured.bodies.len() as f64 / lean_seconds;
            println!(
                "lean_loop postgres: {} messages in {lean_seconds:.2} s = {lean_rate:.0} messages/s; reply_path / lean_loop = {:.2}",
                measured.bodies.len(),
                measured.rate() / lean_rate
            );
        }
        if let Some(history) = history {
            let seeded = run(backend, load, Some(history)).await;
            report(name, " seeded", load, &seeded);
            let (p50, _) = percentiles(measured.requests.clone());
            let (seeded_p50, _) = percentiles(seeded.requests.clone());
            println!(
                "reply_path {name} seeded / empty: replies/s {:.2}, request p50 {:.2}",
                seeded.rate() / measured.rate(),
                seeded_p50.as_secs_f64() / p50.as_secs_f64()
            );
        }
    }
}

fn report(name: &str, label: &str, load: Load, measured: &Measured) {
    println!(
        "reply_path {name}{label}: {} replies for {} tasks in {:.2} s = {:.0} replies/s",
        measured.replies,
        load.tasks,
        measured.seconds,
        measured.rate()
    );
    let (p50, p99) = percentiles(measured.latencies.clone());
    println!(
        "reply_path {name}{label} latency (published -> committed, {} replies at {}/s): p50 {:.1} ms, p99 {:.1} ms",
        load.latency_replies,
        load.latency_rate,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    let (p50, p99) = percentiles(measured.requests.clone());
    println!(
        "reply_path {name}{label} requests ({} sent one after another, publish -> answer): p50 {:.1} ms, p99 {:.1} ms",
        measured.requests.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

fn percentiles(mut values: Vec<Duration>) -> (Duration, Duration) {
    assert!(!values.is_empty(), "no latency measured");
    values.sort();
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

/// Creates a cluster of `nodes` nodes and starts its upgrade; the task's uuid and node ids.
async fn running_task(
    bridge: &mut Bridge,
    name: &str,
    nodes: usize,
    from: &Value,
    to: &Value,
) -> (String, i64, Vec<i64>) {
    let cluster = bridge
        .ok(
            "create_cluster",
            json!({"name": name, "release_id": from, "mode": "multinode", "status": "operational"}),
        )
        .await["id"]
        .clone();
    let list = (0..nodes)
        .map(|n| {
            json!({"name": format!("{name}-{n}"), "fqdn": format!("{name}-{n}.domain.tld"),
                   "roles": [if n == 0 { "controller" } else { "compute" }]})
        })
        .collect::<Vec<_>>();
    let added = bridge
        .ok("add_nodes", json!({"cluster_id": cluster, "nodes": list}))
        .await;
    let node_ids = added
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
    (
        task["uuid"].as_str().expect("uuid").to_string(),
        cluster.as_i64().expect("cluster id"),
        node_ids,
    )
}

fn reply_body(args: Value) -> Vec<u8> {
    json!({"method": "deploy_resp", "args": args})
        .to_string()
        .into_bytes()
}

/// The throughput phase's replies, in the order Astute would send them across tasks.
fn backlog(load: Load, tasks: &[(String, i64, Vec<i64>)]) -> Vec<Vec<u8>> {
    let mut bodies = Vec::with_capacity(load.replies());
    for step in 1..=load.steps {
        let progress = step * 99 / (load.steps + 1);
        for n in 0..load.nodes {
            for (uuid, _, nodes) in tasks {
                bodies.push(reply_body(json!({"task_uuid": uuid, "nodes": [
                    {"uid": nodes[n].to_string(), "status": "deploying", "progress": progress}]})));
            }
        }
    }
    for n in 0..load.nodes {
        for (uuid, _, nodes) in tasks {
            bodies.push(reply_body(json!({"task_uuid": uuid, "nodes": [
                {"uid": nodes[n].to_string(), "status": "ready", "progress": 100}]})));
        }
    }
    for (uuid, _, _) in tasks {
        bodies.push(reply_body(
            json!({"task_uuid": uuid, "status": "ready", "progress": 100}),
        ));
    }
    bodies
}

/// Publishes every body on Astute's reply exchange, confirms awaited together.
async fn publish_all(bridge: &Bridge, bodies: &[Vec<u8>]) {
    let mut confirms = Vec::with_capacity(bodies.len());
    for body in bodies {
        confirms.push(publish(bridge, body).await);
    }
    for confirm in confirms {
        confirm.await.expect("confirm");
    }
}

async fn publish(bridge: &Bridge, body: &[u8]) -> lapin::PublisherConfirm {
    bridge
        .channel
        .basic_publish(
            bridge.settings.amqp.nailgun_exchange.as_str().into(),
            bridge.settings.amqp.nailgun_routing_key.as_str().into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_content_type("application/json".into()),
        )
        .await
        .expect("publish")
}

async fn scalar(bridge: &Bridge, sql: &str) -> i64 {
    bridge
        .db
        .query_one_raw(Statement::from_string(
            bridge.db.get_database_backend(),
            sql.to_string(),
        ))
        .await
        .expect("query")
        .expect("a row")
        .try_get::<i64>("", "n")
        .expect("n")
}

fn id_list(ids: impl Iterator<Item = i64>) -> String {
    ids.map(|id| id.to_string()).collect::<Vec<_>>().join(",")
}

async fn run(backend: Backend, load: Load, history: Option<History>) -> Measured {
    let mut bridge = Bridge::start(backend).await;
    if let Some(history) = history {
        let started = Instant::now();
        seed(&bridge.db, history).await;
        println!(
            "seeded {history:?} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
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
    let mut tasks = Vec::with_capacity(load.tasks);
    for c in 0..load.tasks {
        tasks.push(running_task(&mut bridge, &format!("env-{c}"), load.nodes, &from, &to).await);
    }
    let mut paced = Vec::with_capacity(load.latency_tasks);
    for c in 0..load.latency_tasks {
        paced.push(running_task(&mut bridge, &format!("paced-{c}"), 5, &from, &to).await);
    }
    bridge.halt().await;

    let bodies = backlog(load, &tasks);
    publish_all(&bridge, &bodies).await;

    // Lanes and prefetch may be changed for an experiment; the defaults are what ships.
    let mut settings = bridge.settings.clone();
    if let Ok(Ok(lanes)) = std::env::var("BENCH_REPLY_WORKERS").map(|v| v.parse()) {
        settings.amqp.reply_workers = lanes;
    }
    if let Ok(Ok(prefetch)) = std::env::var("BENCH_PREFETCH").map(|v| v.parse()) {
        settings.amqp.prefetch = prefetch;
    }
    let app = Application::build(settings)
        .await
        .expect("the measured bridge starts");
    let stop = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));
    let clusters = id_list(tasks.iter().map(|t| t.1));
    let ready_sql = format!(
        "SELECT COUNT(*) AS n FROM tasks WHERE status = 'ready' AND cluster_id IN ({clusters})"
    );
    let deadline = started + Duration::from_secs(900);
    while scalar(&bridge, &ready_sql).await < load.tasks as i64 {
        assert!(Instant::now() < deadline, "the tasks never all ended");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    check_end_state(&bridge, load, &clusters).await;

    let latencies = paced_latency(&bridge, load, &paced).await;
    let requests = request_latency(&mut bridge, tasks[0].1).await;

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
    Measured {
        replies: bodies.len(),
        seconds,
        latencies,
        requests,
        bodies,
    }
}

/// Requests one after another, each timed from publish to answer.
async fn request_latency(bridge: &mut Bridge, cluster: i64) -> Vec<Duration> {
    let requests = [
        ("get_cluster", json!({"cluster_id": cluster})),
        (
            "list_notifications",
            json!({"cluster_id": cluster, "limit": 20}),
        ),
        (
            "list_notifications",
            json!({"status": "unread", "limit": 100}),
        ),
        ("list_clusters", json!({"after_id": cluster, "limit": 100})),
    ];
    let mut latencies = Vec::with_capacity(400);
    for i in 0..400 {
        let (method, args) = &requests[i % requests.len()];
        let started = Instant::now();
        bridge.ok(method, args.clone()).await;
        latencies.push(started.elapsed());
    }
    latencies
}

/// Every task and node ended `ready` at 100 %, each task with one `done` notification, and
/// nothing went to the dead-letter queue.
async fn check_end_state(bridge: &Bridge, load: Load, clusters: &str) {
    let checks = [
        (
            format!("SELECT COUNT(*) AS n FROM tasks WHERE status = 'ready' AND progress = 100 AND cluster_id IN ({clusters})"),
            load.tasks,
            "tasks ready at 100 %",
        ),
        (
            format!("SELECT COUNT(*) AS n FROM nodes WHERE status = 'ready' AND progress = 100 AND cluster_id IN ({clusters})"),
            load.tasks * load.nodes,
            "nodes ready at 100 %",
        ),
        (
            format!("SELECT COUNT(*) AS n FROM notifications WHERE topic = 'done' AND cluster_id IN ({clusters})"),
            load.tasks,
            "one done notification per task",
        ),
        (
            format!("SELECT COUNT(*) AS n FROM notifications WHERE topic <> 'done' AND cluster_id IN ({clusters})"),
            0,
            "no other notification",
        ),
    ];
    for (sql, wanted, what) in checks {
        assert_eq!(scalar(bridge, &sql).await, wanted as i64, "{what}");
    }
    let dead = bridge.settings.amqp.dead_letter_queue.clone();
    assert_eq!(bridge.queue_depth(&dead).await, 0, "nothing dead-lettered");
}

/// Per node, the progress each published reply sets and when it was published, oldest first.
type Waiting = HashMap<i64, VecDeque<(i64, Instant)>>;

/// Publishes progress replies to the paced tasks at `latency_rate` while polling their nodes;
/// each reply's time from publish to its progress being stored.
async fn paced_latency(
    bridge: &Bridge,
    load: Load,
    paced: &[(String, i64, Vec<i64>)],
) -> Vec<Duration> {
    // (task, node) pairs in turn; each node's k-th reply sets progress k, so a stored progress
    // of k or more means its first k replies are in.
    let pairs: Vec<(&str, i64)> = paced
        .iter()
        .flat_map(|(uuid, _, nodes)| nodes.iter().map(move |n| (uuid.as_str(), *n)))
        .collect();
    assert!(
        load.latency_replies <= pairs.len() * 99,
        "too many latency replies for the paced tasks"
    );
    let mut sent: HashMap<i64, i64> = HashMap::new();
    let mut planned = Vec::with_capacity(load.latency_replies);
    for i in 0..load.latency_replies {
        let (uuid, node) = pairs[i % pairs.len()];
        let progress = sent.entry(node).or_default();
        *progress += 1;
        planned.push((
            node,
            *progress,
            reply_body(json!({"task_uuid": uuid, "nodes": [
            {"uid": node.to_string(), "status": "deploying", "progress": *progress}]})),
        ));
    }

    let waiting: Arc<std::sync::Mutex<Waiting>> = Arc::default();
    let done = CancellationToken::new();
    let sql = format!(
        "SELECT id, progress FROM nodes WHERE cluster_id IN ({})",
        id_list(paced.iter().map(|t| t.1))
    );
    let poller = {
        let (waiting, done, db) = (Arc::clone(&waiting), done.clone(), bridge.db.clone());
        let total = load.latency_replies;
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total);
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            let deadline = Instant::now() + Duration::from_secs(600);
            while latencies.len() < total {
                assert!(Instant::now() < deadline, "paced replies never all applied");
                tick.tick().await;
                let rows = db
                    .query_all_raw(Statement::from_string(
                        db.get_database_backend(),
                        sql.clone(),
                    ))
                    .await
                    .expect("poll");
                let seen = Instant::now();
                let mut waiting = waiting.lock().expect("waiting");
                for row in rows {
                    let id: i32 = row.try_get("", "id").expect("id");
                    let progress: i32 = row.try_get("", "progress").expect("progress");
                    if let Some(queue) = waiting.get_mut(&i64::from(id)) {
                        while queue
                            .front()
                            .is_some_and(|(wanted, _)| *wanted <= i64::from(progress))
                        {
                            if let Some((_, at)) = queue.pop_front() {
                                latencies.push(seen - at);
                            }
                        }
                    }
                }
            }
            done.cancel();
            latencies
        })
    };
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / load.latency_rate as f64));
    let mut confirms = Vec::with_capacity(planned.len());
    for (node, progress, body) in &planned {
        pace.tick().await;
        waiting
            .lock()
            .expect("waiting")
            .entry(*node)
            .or_default()
            .push_back((*progress, Instant::now()));
        confirms.push(publish(bridge, body).await);
    }
    for confirm in confirms {
        confirm.await.expect("confirm");
    }
    let latencies = poller.await.expect("poller");
    assert!(done.is_cancelled());
    latencies
}

/// The yardstick: each message in its own PostgreSQL transaction (one INSERT), acked after the
/// commit; no batching, no bridge logic. Returns the seconds to drain `bodies`.
async fn lean_loop(bodies: &[Vec<u8>]) -> f64 {
    use futures_util::StreamExt;
    use lapin::options::*;
    use lapin::types::FieldTable;
    use lapin::{Connection, ConnectionProperties};
    use sea_orm::{ConnectOptions, Database, TransactionTrait};

    let prefix = common::fresh_prefix('l');
    let admin_url = common::postgres_admin_url();
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

    let conn = Connection::connect(&common::amqp_url(), ConnectionProperties::default())
        .await
        .expect("broker");
    let inbox = format!("{prefix}.in");
    let setup = conn.create_channel().await.expect("channel");
    setup
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    setup
        .queue_declare(
            inbox.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare");
    let props = BasicProperties::default().with_delivery_mode(2);
    for body in bodies {
        setup
            .basic_publish(
                "".into(),
                inbox.as_str().into(),
                BasicPublishOptions::default(),
                body,
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
    for _ in 0..bodies.len() {
        let delivery = consumer.next().await.expect("open").expect("delivery");
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .expect("permit");
        let db = db.clone();
        workers.spawn(async move {
            let body = String::from_utf8_lossy(&delivery.data).to_string();
            let txn = db.begin().await.expect("begin");
            txn.execute_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "INSERT INTO seen (body) VALUES ($1)",
                [body.into()],
            ))
            .await
            .expect("insert");
            txn.commit().await.expect("commit");
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
            drop(permit);
        });
    }
    while workers.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    let _ = setup
        .queue_delete(inbox.as_str().into(), QueueDeleteOptions::default())
        .await;
    db.close().await.ok();
    admin
        .execute_unprepared(&format!(
            r#"DROP DATABASE IF EXISTS "{prefix}" WITH (FORCE)"#
        ))
        .await
        .expect("drop db");
    seconds
}
