//! Three bridges (the real binary) on one PostgreSQL database and a 3-node RabbitMQ cluster with
//! quorum queues, each bridge starting on a different node. Measures replies/s with 1, 2 and 3
//! bridges, then upgrades environments while one broker node and one bridge are killed with
//! SIGKILL and brought back, and checks that every effect happened exactly once.
//!
//! Needs the cluster of `scripts/rabbitmq-cluster start`; `scripts/test-cluster` runs it all.
//! Not part of plain `cargo test` (`test = false` in Cargo.toml).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{json, Value};

use astute_bridge::client::Client;
use astute_bridge::config::Settings;

const BIN: &str = env!("CARGO_BIN_EXE_astute-bridge");
const START_CLUSTER: &str = "scripts/rabbitmq-cluster start";
const START_POSTGRES: &str =
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";
/// AMQP port of node N is 5780 + N (see scripts/rabbitmq-cluster).
const NODES: [u16; 3] = [5781, 5782, 5783];
const VHOST: &str = "bridge";
/// Environments upgraded in each throughput round and in the round with the faults.
const PER_ROUND: usize = 30;
const FAULT_ROUND: usize = 30;
/// Longest any awaited event may take.
const PATIENCE: Duration = Duration::from_secs(90);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cluster's URL in oslo.messaging's form, starting with node `first` (0-based).
fn amqp_url(first: usize) -> String {
    let nodes: Vec<String> = (0..3)
        .map(|i| format!("guest:guest@127.0.0.1:{}", NODES[(first + i) % 3]))
        .collect();
    format!("amqp://{}/{VHOST}?heartbeat=5", nodes.join(","))
}

fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs `scripts/rabbitmq-cluster ARGS`, failing the test if it fails.
fn cluster_script(args: &[&str]) {
    let status = Command::new(root().join("scripts/rabbitmq-cluster"))
        .args(args)
        .status()
        .expect("run scripts/rabbitmq-cluster");
    assert!(status.success(), "scripts/rabbitmq-cluster {args:?} failed");
}

/// `cluster_script` off the runtime's threads (a node takes seconds to start).
async fn cluster_script_async(args: &'static [&'static str]) {
    tokio::task::spawn_blocking(move || cluster_script(args))
        .await
        .expect("scripts/rabbitmq-cluster");
}

/// The queues of the vhost as node 2 lists them: name → (type, leader).
fn queues() -> BTreeMap<String, (String, String)> {
    let out = Command::new(root().join("scripts/rabbitmq-cluster"))
        .args([
            "ctl",
            "2",
            "list_queues",
            "-p",
            VHOST,
            "name",
            "type",
            "leader",
        ])
        .args(["--formatter", "json"])
        .output()
        .expect("list queues");
    assert!(out.status.success(), "list_queues failed");
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("queues as JSON");
    listed
        .iter()
        .map(|q| {
            let text = |k: &str| q[k].as_str().unwrap_or_default().to_string();
            (text("name"), (text("type"), text("leader")))
        })
        .collect()
}

/// One `astute-bridge` process with its environment, HTTP port and log file.
struct Process {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    port: u16,
    child: Child,
}

impl Process {
    fn spawn(
        name: &str,
        args: &[&str],
        env: Vec<(String, String)>,
        logs: &Path,
        port: u16,
    ) -> Process {
        let log = logs.join(format!("{name}.log"));
        let child = Self::start(args, &env, &log);
        Process {
            name: name.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env,
            log,
            port,
            child,
        }
    }

    fn start(args: &[&str], env: &[(String, String)], log: &Path) -> Child {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        Command::new(BIN)
            .args(args)
            .envs(env.iter().cloned())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start astute-bridge")
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.child = Self::start(&args, &self.env, &self.log);
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited with {status}; its log: {}",
                self.name,
                self.log.display()
            );
        }
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    fn readyz(&self) -> String {
        format!("http://127.0.0.1:{}/readyz", self.port)
    }
}

/// A failed test leaves no process behind to consume from the next run's queues.
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bridge_env(database_url: &str, first_node: usize, port: u16) -> Vec<(String, String)> {
    vec![
        ("ASTUTE_BRIDGE__DATABASE__URL".into(), database_url.into()),
        ("ASTUTE_BRIDGE__AMQP__URL".into(), amqp_url(first_node)),
        (
            "ASTUTE_BRIDGE__HTTP__BIND".into(),
            format!("127.0.0.1:{port}"),
        ),
        ("ASTUTE_BRIDGE__MASTER__IP".into(), "10.20.0.2".into()),
        ("ASTUTE_BRIDGE__LOG__FORMAT".into(), "json".into()),
        ("RUST_LOG".into(), "info,lapin=warn".into()),
    ]
}

async fn is_ready(http: &reqwest::Client, url: &str) -> bool {
    matches!(http.get(url).send().await, Ok(r) if r.status() == 200)
}

async fn await_ready(http: &reqwest::Client, process: &mut Process) {
    let deadline = Instant::now() + PATIENCE;
    while !is_ready(http, &process.readyz()).await {
        process.assert_running();
        assert!(
            Instant::now() < deadline,
            "{} not ready within {PATIENCE:?}; log: {}",
            process.name,
            process.log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends requests without waiting for each answer, and keeps every answer by correlation id.
struct Requester {
    _connection: Connection,
    channel: Channel,
    reply_queue: String,
    answers: Arc<Mutex<HashMap<String, Vec<Value>>>>,
}

impl Requester {
    /// On node 2, which stays up.
    async fn open() -> Requester {
        let node = format!("amqp://guest:guest@127.0.0.1:{}/{VHOST}", NODES[1]);
        let connection = Connection::connect(&node, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| {
                panic!("no RabbitMQ cluster on 127.0.0.1:5781-5783 ({e}); start it with: {START_CLUSTER}")
            });
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("reply queue");
        let reply_queue = queue.name().to_string();
        let mut consumer = channel
            .basic_consume(
                reply_queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume answers");
        let answers: Arc<Mutex<HashMap<String, Vec<Value>>>> = Arc::default();
        let kept = Arc::clone(&answers);
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let id = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                let answer: Value = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
                kept.lock()
                    .expect("answers")
                    .entry(id)
                    .or_default()
                    .push(answer);
            }
        });
        Requester {
            _connection: connection,
            channel,
            reply_queue,
            answers,
        }
    }

    /// Publishes one request (confirmed by the broker); returns its correlation id.
    async fn send(&self, method: &str, args: Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(id.as_str().into())
            .with_correlation_id(id.as_str().into())
            .with_reply_to(self.reply_queue.as_str().into());
        let body = json!({"method": method, "args": args}).to_string();
        let confirm = self
            .channel
            .basic_publish(
                "astute_bridge".into(),
                format!("request.{method}").as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                properties,
            )
            .await
            .expect("publish a request")
            .await
            .expect("request confirmed");
        assert!(confirm.is_ack(), "the broker refused a request");
        id
    }

    /// Publishes Astute's replies all at once (confirms awaited together), as Astute's
    /// reporter does: JSON, not persistent.
    async fn publish_replies(&self, replies: &[Value]) {
        let mut confirms = Vec::with_capacity(replies.len());
        for args in replies {
            let body = json!({"method": "deploy_resp", "args": args}).to_string();
            confirms.push(
                self.channel
                    .basic_publish(
                        "nailgun".into(),
                        "nailgun".into(),
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        BasicProperties::default().with_content_type("application/json".into()),
                    )
                    .await
                    .expect("publish a reply"),
            );
        }
        for confirm in confirms {
            assert!(confirm.await.expect("reply confirmed").is_ack());
        }
    }

    fn answers(&self) -> HashMap<String, Vec<Value>> {
        self.answers.lock().expect("answers").clone()
    }
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a row");
    row.try_get_by_index::<i64>(0)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Creates `count` environments of the fixture's multinode kind; returns their ids.
async fn environments(client: &mut Client, release: i64, count: usize) -> Vec<i64> {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/patching-demo.json")).expect("fixture");
    let template = fixture["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["name"] == "env-multinode")
        .expect("env-multinode")
        .clone();
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let name = format!("env-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let created = client
            .call(
                "create_cluster",
                json!({"name": name, "release_id": release, "mode": template["mode"],
                       "status": template["status"], "attributes": template["attributes"]}),
            )
            .await
            .expect("create_cluster");
        let id = created["id"].as_i64().expect("cluster id");
        // Node names are unique per environment.
        let nodes: Vec<Value> = template["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut n = n.clone();
                n["name"] = json!(format!("{name}-node-{i}"));
                n["fqdn"] = json!(format!("{name}-node-{i}.domain.tld"));
                n
            })
            .collect();
        client
            .call("add_nodes", json!({"cluster_id": id, "nodes": nodes}))
            .await
            .expect("add_nodes");
        ids.push(id);
    }
    ids
}

/// Requests an update of every environment to `target`; returns the correlation ids.
async fn update_all(requester: &Requester, clusters: &[i64], target: i64) -> Vec<String> {
    let mut ids = Vec::with_capacity(clusters.len());
    for cluster in clusters {
        ids.push(
            requester
                .send(
                    "update_cluster",
                    json!({"cluster_id": cluster, "release_id": target}),
                )
                .await,
        );
    }
    ids
}

/// Waits until every task of `clusters` has ended.
async fn await_ended(db: &DatabaseConnection, clusters: &[i64], processes: &mut [&mut Process]) {
    let list = clusters
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT COUNT(*) FROM tasks WHERE cluster_id IN ({list}) AND status IN ('ready', 'error')"
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        if scalar(db, &sql).await == clusters.len() as i64 {
            return;
        }
        for p in processes.iter_mut() {
            p.assert_running();
        }
        assert!(
            Instant::now() < deadline,
            "tasks not ended within {PATIENCE:?}: {} of {}",
            scalar(db, &sql).await,
            clusters.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The simulated Astute's casts, from its log: replies scripted per task uuid, one entry per
/// cast taken.
fn casts_taken(log: &Path) -> HashMap<String, Vec<u64>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut casts: HashMap<String, Vec<u64>> = HashMap::new();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let fields = &entry["fields"];
        if fields["message"] == "simulated Astute took a cast" {
            let uuid = fields["task_uuid"].as_str().unwrap_or_default().to_string();
            casts
                .entry(uuid)
                .or_default()
                .push(fields["replies"].as_u64().unwrap_or(0));
        }
    }
    casts
}

async fn task_uuids(db: &DatabaseConnection, clusters: &[i64]) -> Vec<String> {
    let list = clusters
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT uuid FROM tasks WHERE cluster_id IN ({list})"),
        ))
        .await
        .expect("task uuids");
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("uuid"))
        .collect()
}

/// Replies counted by a bridge's `/metrics` once handled (requeues are counted again later).
async fn replies_handled(http: &reqwest::Client, process: &Process) -> u64 {
    let text = http
        .get(format!("http://127.0.0.1:{}/metrics", process.port))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with("astute_bridge_replies_total{"))
        .filter(|l| !l.contains("outcome=\"requeued\"") && !l.contains("node_dead_lettered"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Progress reports per task in a throughput round, then the final `ready`.
const STEPS: usize = 30;

/// Upgrades `PER_ROUND` new environments with the bridges running now (the simulated Astute
/// takes the casts and stays silent), then publishes Astute's replies for all of them at once
/// and measures how fast the bridges apply them: replies/s.
async fn throughput_round(
    client: &mut Client,
    requester: &Requester,
    db: &DatabaseConnection,
    release: (i64, i64),
    bridges: &mut [Process],
) -> (usize, f64) {
    let http = reqwest::Client::new();
    let clusters = environments(client, release.0, PER_ROUND).await;
    update_all(requester, &clusters, release.1).await;
    let list = clusters
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let deadline = Instant::now() + PATIENCE;
    while scalar(
        db,
        &format!("SELECT COUNT(*) FROM tasks WHERE cluster_id IN ({list})"),
    )
    .await
        < PER_ROUND as i64
    {
        assert!(Instant::now() < deadline, "tasks not started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut tasks = Vec::new();
    for uuid in task_uuids(db, &clusters).await {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT n.id::BIGINT FROM nodes n JOIN tasks t ON t.cluster_id = n.cluster_id \
                     WHERE t.uuid = '{uuid}'"
                ),
            ))
            .await
            .expect("nodes");
        let nodes: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get_by_index::<i64>(0).expect("node id"))
            .collect();
        tasks.push((uuid, nodes));
    }
    let mut replies = Vec::new();
    for step in 1..=STEPS {
        let progress = step * 99 / STEPS;
        for (uuid, nodes) in &tasks {
            let node = nodes[step % nodes.len()];
            replies.push(json!({"task_uuid": uuid, "progress": progress,
                                "nodes": [{"uid": node, "status": "deploying", "progress": progress}]}));
        }
    }
    for (uuid, nodes) in &tasks {
        let all: Vec<Value> = nodes
            .iter()
            .map(|n| json!({"uid": n, "status": "ready", "progress": 100}))
            .collect();
        replies.push(json!({"task_uuid": uuid, "status": "ready", "progress": 100, "nodes": all}));
    }

    let mut before = 0;
    for b in bridges.iter() {
        before += replies_handled(&http, b).await;
    }
    let started = Instant::now();
    requester.publish_replies(&replies).await;
    let published = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut now = 0;
        for b in bridges.iter() {
            now += replies_handled(&http, b).await;
        }
        if now - before >= replies.len() as u64 {
            break;
        }
        for b in bridges.iter_mut() {
            b.assert_running();
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} replies handled",
            now - before,
            replies.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} replies published and confirmed in {published:.2} s, handled in {seconds:.2} s",
        replies.len()
    );
    let rate = replies.len() as f64 / seconds;
    await_ended(db, &clusters, &mut bridges.iter_mut().collect::<Vec<_>>()).await;
    (replies.len(), rate)
}

async fn queue_depth(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("queue {queue}: {e}"))
        .message_count()
}

/// Watches `/readyz` of one bridge; keeps each change with its time.
fn watch_readiness(url: String) -> Arc<Mutex<Vec<(Instant, bool)>>> {
    let changes: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
    let kept = Arc::clone(&changes);
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut last = None;
        loop {
            let ready = is_ready(&http, &url).await;
            if last != Some(ready) {
                kept.lock().expect("changes").push((Instant::now(), ready));
                last = Some(ready);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bridges_on_a_cluster_survive_a_node_and_a_bridge_killed() {
    let logs = root().join("target/tmp/cluster-test");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).expect("log directory");

    // A fresh database for this run.
    let admin = Database::connect(postgres_admin_url())
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not running ({e}); start it with: {START_POSTGRES}")
        });
    let db_name = format!(
        "cluster_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    admin
        .execute_unprepared(&format!("CREATE DATABASE {db_name}"))
        .await
        .expect("create database");
    let database_url = postgres_admin_url().replace("/test?", &format!("/{db_name}?"));
    let migrate = Command::new(BIN)
        .arg("migrate")
        .envs(bridge_env(&database_url, 0, 0))
        .stdout(Stdio::null())
        .output()
        .expect("run migrate");
    assert!(
        migrate.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let db = Database::connect(database_url.as_str())
        .await
        .expect("test database");

    let requester = Requester::open().await;
    let http = reqwest::Client::new();

    // Bridge N starts on node N. Bridge 1 declares the queues first, so their leaders are on
    // node 1, the node that is killed.
    let bridge = |i: usize| {
        let port = free_port();
        Process::spawn(
            &format!("bridge{}", i + 1),
            &["serve"],
            bridge_env(&database_url, i, port),
            &logs,
            port,
        )
    };
    let mut bridges: Vec<Process> = vec![bridge(0)];
    await_ready(&http, &mut bridges[0]).await;
    // During the throughput rounds the simulated Astute takes the casts and says nothing:
    // the test publishes the replies.
    let mut simulator = Process::spawn(
        "astute",
        &["simulate-astute", "--stall"],
        bridge_env(&database_url, 2, 0),
        &logs,
        0,
    );
    let mut settings = Settings::load(None).expect("default settings");
    settings.amqp.url = amqp_url(1).into();
    let mut client = Client::connect(&settings.amqp, Duration::from_secs(30))
        .await
        .expect("client on the cluster");
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/patching-demo.json")).expect("fixture");
    let mut releases = BTreeMap::new();
    for release in fixture["releases"].as_array().expect("releases") {
        let created = client
            .call("create_release", release.clone())
            .await
            .expect("create_release");
        releases.insert(
            format!(
                "{} {}",
                release["name"].as_str().unwrap_or_default(),
                release["version"].as_str().unwrap_or_default()
            ),
            created["id"].as_i64().expect("release id"),
        );
    }
    let from = releases["Icehouse on Ubuntu 12.04 2014.1-5.0"];
    let to = releases["Icehouse on Ubuntu 12.04.4 2014.1.1-5.0.2"];

    // Throughput with 1, 2 and 3 bridges.
    let mut rates = Vec::new();
    for count in 1..=3 {
        if count > 1 {
            bridges.push(bridge(count - 1));
            await_ready(&http, &mut bridges[count - 1]).await;
        }
        let (replies, rate) =
            throughput_round(&mut client, &requester, &db, (from, to), &mut bridges).await;
        simulator.assert_running();
        println!("replies/s with {count} bridge(s): {rate:.0} ({replies} replies)");
        rates.push(rate);
    }

    // The faults: a slower Astute so that replies flow for several seconds.
    simulator.terminate();
    let mut simulator = Process::spawn(
        "astute-slow",
        &["simulate-astute", "--step-ms", "150"],
        bridge_env(&database_url, 2, 0),
        &logs,
        0,
    );
    let clusters = environments(&mut client, from, FAULT_ROUND).await;
    let readiness = watch_readiness(bridges[0].readyz());
    let requests = update_all(&requester, &clusters, to).await;

    // Mid-flow: once a third of the tasks have heard from Astute, node 1 dies.
    let list = clusters
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let progressed =
        format!("SELECT COUNT(*) FROM tasks WHERE cluster_id IN ({list}) AND progress > 0");
    let deadline = Instant::now() + PATIENCE;
    while scalar(&db, &progressed).await < (FAULT_ROUND / 3) as i64 {
        assert!(Instant::now() < deadline, "no task progressed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = queues();
    println!("queues before the kill (type, leader): {before:?}");
    for queue in ["astute_bridge.requests", "naily", "nailgun", "nailgun.dead"] {
        assert_eq!(
            before.get(queue).map(|(t, _)| t.as_str()),
            Some("quorum"),
            "{queue} is a quorum queue (the vhost's default type)"
        );
    }
    let killed_at = Instant::now();
    cluster_script(&["kill", "1"]);
    println!("node 1 killed");
    // Bridge 2 dies too, while bridge 1 moves to another node.
    bridges[1].kill();
    println!("bridge 2 killed");
    bridges[1].restart();
    cluster_script_async(&["revive", "1"]).await;
    println!(
        "node 1 back after {:.1} s",
        killed_at.elapsed().as_secs_f64()
    );
    {
        let (b, rest) = bridges.split_at_mut(1);
        let mut processes: Vec<&mut Process> = vec![&mut b[0]];
        processes.extend(rest.iter_mut());
        processes.push(&mut simulator);
        await_ended(&db, &clusters, &mut processes).await;
    }
    for b in bridges.iter_mut() {
        await_ready(&http, b).await;
    }

    // What the node loss cost bridge 1.
    let changes = readiness.lock().expect("changes").clone();
    let lost = changes
        .iter()
        .find(|(at, ready)| *at >= killed_at && !ready)
        .map(|(at, _)| *at);
    let back = lost.and_then(|l| changes.iter().find(|(at, ready)| *at > l && *ready));
    match (lost, back) {
        (Some(l), Some((b, _))) => println!(
            "node loss: bridge 1 not ready {:.2} s after the kill, ready again {:.2} s later",
            (l - killed_at).as_secs_f64(),
            (*b - l).as_secs_f64()
        ),
        _ => println!("node loss: bridge 1 never reported not ready"),
    }

    // Every request answered, and never with two different answers.
    let answers = requester.answers();
    let mut duplicates = 0;
    for id in &requests {
        let got = answers
            .get(id)
            .unwrap_or_else(|| panic!("request {id} not answered"));
        assert!(
            got.iter().all(|a| a == &got[0]),
            "request {id} answered differently: {got:?}"
        );
        assert_eq!(got[0]["ok"], true, "update refused: {}", got[0]);
        duplicates += got.len() - 1;
    }
    println!("answers sent again after a redelivery: {duplicates}");
    // One task per accepted request, each with its answer's uuid.
    let uuids = task_uuids(&db, &clusters).await;
    assert_eq!(uuids.len(), FAULT_ROUND, "one task per environment");
    for id in &requests {
        let uuid = answers[id][0]["result"]["uuid"]
            .as_str()
            .unwrap_or_default();
        assert!(uuids.iter().any(|u| u == uuid), "no task {uuid}");
    }
    // One cast per task (the simulated Astute took each once, whichever simulator).
    let mut casts = casts_taken(&root().join("target/tmp/cluster-test/astute.log"));
    for (uuid, taken) in casts_taken(&simulator.log) {
        casts.entry(uuid).or_default().extend(taken);
    }
    for uuid in &uuids {
        assert_eq!(
            casts.get(uuid).map(Vec::len),
            Some(1),
            "task {uuid} cast once"
        );
    }
    // Every task ended; one `done` notification per task.
    assert_eq!(
        scalar(
            &db,
            &format!("SELECT COUNT(*) FROM tasks WHERE cluster_id IN ({list}) AND status IN ('ready', 'error')")
        )
        .await,
        FAULT_ROUND as i64
    );
    assert_eq!(
        scalar(
            &db,
            &format!(
                "SELECT COUNT(*) FROM (SELECT cluster_id FROM notifications WHERE topic = 'done' \
                 AND cluster_id IN ({list}) GROUP BY cluster_id HAVING COUNT(*) = 1) AS once"
            )
        )
        .await,
        FAULT_ROUND as i64,
        "one done notification per task"
    );
    // Nothing left in the outbox or in any queue (acks follow commits, so wait for them).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let outbox = scalar(&db, "SELECT COUNT(*) FROM outbox").await;
        let mut depths = Vec::new();
        for queue in ["astute_bridge.requests", "naily", "nailgun", "nailgun.dead"] {
            depths.push((queue, queue_depth(&requester.channel, queue).await));
        }
        if outbox == 0 && depths.iter().all(|(_, d)| *d == 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: outbox {outbox}, queues {depths:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every bridge ready at the end, none exited.
    for b in bridges.iter_mut() {
        b.assert_running();
        assert!(is_ready(&http, &b.readyz()).await, "{} ready", b.name);
    }
    println!(
        "replies/s: 1 bridge {:.0}, 2 bridges {:.0}, 3 bridges {:.0}",
        rates[0], rates[1], rates[2]
    );

    for b in bridges.iter_mut() {
        b.terminate();
    }
    simulator.terminate();
    client.close().await;
    drop(db);
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE {db_name} WITH (FORCE)"))
        .await;
}
