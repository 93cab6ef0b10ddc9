//! The test harness: a real bridge, in-process, against the machine's RabbitMQ and a fresh
//! database (a temporary SQLite file, or a new PostgreSQL database), with every exchange and
//! queue name prefixed so tests never see each other's messages. The test plays Astute and the
//! requesting services itself, with lapin.
#![allow(dead_code)]

pub mod broker_user;
pub mod proxy;
pub mod seed;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use astute_bridge::app::{AppError, Application, Server};
use astute_bridge::config::Settings;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const START_RABBITMQ: &str = "rabbitmq-server -detached && rabbitmqctl await_startup";
pub const START_POSTGRES: &str =
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";
/// The master's address the harness configures (`[master] ip`).
pub const TEST_MASTER_IP: &str = "10.20.0.2";
/// How long any awaited event may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into())
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL").unwrap_or_else(|_| AMQP_URL.into())
}

/// The default settings with `database_url`, the test broker, a master at `TEST_MASTER_IP`, and
/// every exchange and queue name prefixed with `prefix`, so that concurrent tests never see each other's messages.
pub fn isolated_settings(prefix: &str, database_url: String) -> Settings {
    let mut settings = Settings::load(None).expect("default settings");
    settings.database.url = database_url.into();
    settings.amqp.url = amqp_url().into();
    settings.http.bind = "127.0.0.1:0".into();
    // A master, as on a Fuel master node, so releases registered without sources can be cast;
    // tests of the unconfigured master clear it.
    settings.master.ip = TEST_MASTER_IP.into();
    let a = &mut settings.amqp;
    for name in [
        &mut a.naily_exchange,
        &mut a.naily_queue,
        &mut a.naily_service_exchange,
        &mut a.nailgun_exchange,
        &mut a.nailgun_queue,
        &mut a.dead_letter_queue,
        &mut a.request_exchange,
        &mut a.request_queue,
        &mut a.notifications_exchange,
    ] {
        *name = format!("{prefix}.{name}");
    }
    settings
}

/// A fresh prefix for `isolated_settings`.
pub fn fresh_prefix(letter: char) -> String {
    format!(
        "{letter}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A second bridge on a test's database and names.
pub struct Replica {
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), AppError>>,
}

impl Replica {
    /// Stops it as SIGTERM would and checks it stopped cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle
            .await
            .expect("replica task")
            .expect("the replica stopped without error");
    }
}

/// A running bridge and the test's own view of the broker and the database.
pub struct Bridge {
    pub settings: Settings,
    /// The HTTP API's base URL, e.g. `http://127.0.0.1:41234`.
    pub http: String,
    /// The test's own connection to the bridge's database, for assertions.
    pub db: DatabaseConnection,
    pub channel: Channel,
    connection: Connection,
    casts: Consumer,
    notifications: Consumer,
    answers: Consumer,
    answer_queue: String,
    /// Correlation ids already answered: answers are at-least-once, so a repeat of one of
    /// these may come later and is skipped (any other stray answer fails the test).
    answered: std::collections::HashSet<String>,
    notification_queue: String,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<Result<(), AppError>>>,
    backend: Backend,
    pg_database: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Bridge {
    /// Starts a bridge on a fresh database and a private set of names.
    pub async fn start(backend: Backend) -> Bridge {
        Bridge::start_with(backend, |_| {}).await
    }

    /// Starts a bridge whose settings `tweak` adjusts first.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Bridge {
        Bridge::launch(backend, tweak, false).await
    }

    /// Starts a bridge as `serve` runs it: started again after losing its broker or database.
    /// The HTTP API is off. The test's own connections (broker and database) go straight to
    /// the servers, whatever URLs `tweak` gives the bridge.
    pub async fn start_supervised(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Bridge {
        Bridge::launch(backend, tweak, true).await
    }

    async fn launch(
        backend: Backend,
        tweak: impl FnOnce(&mut Settings),
        supervised: bool,
    ) -> Bridge {
        let prefix = fresh_prefix('t');
        let (url, dir, pg_database) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bridge.db").display()
                );
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let admin = Database::connect(postgres_admin_url()).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL is not reachable at {} ({e}); start it with: {START_POSTGRES}", postgres_admin_url())
                });
                admin
                    .execute_unprepared(&format!(r#"CREATE DATABASE "{prefix}""#))
                    .await
                    .expect("create the test database");
                admin.close().await.ok();
                (
                    with_database(&postgres_admin_url(), &prefix),
                    None,
                    Some(prefix.clone()),
                )
            }
        };
        let mut settings = isolated_settings(&prefix, url.clone());
        settings.outbox.poll_interval_ms = 200;
        tweak(&mut settings);

        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| {
                panic!("RabbitMQ is not reachable ({e}); start it with: {START_RABBITMQ}")
            });
        let channel = connection.create_channel().await.expect("channel");
        let shutdown = CancellationToken::new();
        let (http, handle) = if supervised {
            // Declared here so the test's consumers can start before the bridge is up.
            astute_bridge::amqp::topology::declare(&channel, &settings.amqp)
                .await
                .expect("declare the bridge's topology");
            let server = Server::bind(settings.clone())
                .await
                .unwrap_or_else(|e| panic!("the bridge's HTTP front did not bind: {e}"));
            let http = format!(
                "http://{}",
                server.http_addr().expect("the HTTP API is enabled")
            );
            (http, tokio::spawn(server.run(shutdown.clone())))
        } else {
            let app = Application::build(settings.clone()).await.unwrap_or_else(|e| {
                panic!("the bridge did not start ({e}); is RabbitMQ running? start it with: {START_RABBITMQ}")
            });
            let http = format!(
                "http://{}",
                app.http_addr().expect("the HTTP API is enabled")
            );
            (http, tokio::spawn(app.run_until_stopped(shutdown.clone())))
        };
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let casts = consume(&channel, &settings.amqp.naily_queue, "consume naily").await;
        let notification_queue = format!("{prefix}.watch");
        declare_durable(
            &channel,
            &notification_queue,
            "declare the notification watch queue",
        )
        .await;
        channel
            .queue_bind(
                notification_queue.as_str().into(),
                settings.amqp.notifications_exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the notification watch queue");
        let notifications = consume(&channel, &notification_queue, "consume notifications").await;
        let answer_queue = format!("{prefix}.answers");
        declare_durable(&channel, &answer_queue, "declare the answer queue").await;
        let answers = consume(&channel, &answer_queue, "consume answers").await;
        let db = Database::connect(url.as_str())
            .await
            .expect("test's database connection");
        Bridge {
            settings,
            http,
            db,
            channel,
            connection,
            casts,
            notifications,
            answers,
            answer_queue,
            answered: Default::default(),
            notification_queue,
            shutdown,
            handle: Some(handle),
            backend,
            pg_database,
            _dir: dir,
        }
    }

    /// Stops the bridge gracefully but keeps its database and queues for inspection.
    pub async fn halt(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("bridge task")
                .expect("the bridge stopped without error");
        }
    }

    /// Messages ready in a queue (not counting any delivered and unacked).
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("passive declare")
            .message_count()
    }

    /// Starts another bridge on the same database and names (a replica), running until
    /// `Replica::stop`.
    pub async fn start_replica(&self) -> Replica {
        let app = Application::build(self.settings.clone())
            .await
            .unwrap_or_else(|e| panic!("the replica did not start: {e}"));
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Replica { shutdown, handle }
    }

    /// Publishes every request (each with its message id) before reading any answer, so that
    /// the bridges run them concurrently; returns the answers in request order.
    pub async fn requests_at_once(&mut self, requests: &[(&str, Value, String)]) -> Vec<Value> {
        let mut correlation_ids = Vec::new();
        for (method, args, message_id) in requests {
            let correlation_id = uuid::Uuid::new_v4().to_string();
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_message_id(message_id.as_str().into())
                .with_correlation_id(correlation_id.as_str().into())
                .with_reply_to(self.answer_queue.as_str().into());
            let body = json!({"method": method, "args": args}).to_string();
            self.publish(
                &self.settings.amqp.request_exchange.clone(),
                &format!("request.{method}"),
                body.as_bytes(),
                properties,
            )
            .await;
            correlation_ids.push(correlation_id);
        }
        let mut answers: Vec<Option<Value>> = vec![None; requests.len()];
        for _ in 0..requests.len() {
            let (answer, correlation_id) = next_json(&mut self.answers, "an answer").await;
            let index = correlation_ids
                .iter()
                .position(|c| Some(c.as_str()) == correlation_id.as_deref())
                .expect("an answer to one of our requests");
            assert!(answers[index].is_none(), "one answer per request");
            answers[index] = Some(answer);
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or(Value::Null))
            .collect()
    }

    /// Publishes a request without waiting for its answer; returns its correlation id.
    pub async fn send_request(&self, method: &str, args: Value, message_id: &str) -> String {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(message_id.into())
            .with_correlation_id(correlation_id.as_str().into())
            .with_reply_to(self.answer_queue.as_str().into());
        let body = json!({"method": method, "args": args}).to_string();
        self.publish(
            &self.settings.amqp.request_exchange.clone(),
            &format!("request.{method}"),
            body.as_bytes(),
            properties,
        )
        .await;
        correlation_id
    }

    /// The next answer on the test's reply queue, with its correlation id.
    pub async fn next_answer(&mut self) -> (Value, Option<String>) {
        next_json(&mut self.answers, "an answer").await
    }

    /// Stops the test's own consumer of `naily`, so that another Astute (a simulator) takes
    /// the casts.
    pub async fn leave_casts_to_astute(&self) {
        self.channel
            .basic_cancel(self.casts.tag(), BasicCancelOptions::default())
            .await
            .expect("cancel the test's consumer of naily");
    }

    /// The environment variables that point the `astute-bridge` binary at this bridge's broker
    /// and names.
    pub fn binary_env(&self) -> Vec<(String, String)> {
        let a = &self.settings.amqp;
        let mut vars = vec![
            (
                "ASTUTE_BRIDGE__AMQP__URL".to_string(),
                a.url.expose().to_owned(),
            ),
            ("RUST_LOG".to_string(), "warn".to_string()),
        ];
        for (key, value) in [
            ("NAILY_EXCHANGE", &a.naily_exchange),
            ("NAILY_QUEUE", &a.naily_queue),
            ("NAILY_SERVICE_EXCHANGE", &a.naily_service_exchange),
            ("NAILGUN_EXCHANGE", &a.nailgun_exchange),
            ("NAILGUN_QUEUE", &a.nailgun_queue),
            ("DEAD_LETTER_QUEUE", &a.dead_letter_queue),
            ("REQUEST_EXCHANGE", &a.request_exchange),
            ("REQUEST_QUEUE", &a.request_queue),
            ("NOTIFICATIONS_EXCHANGE", &a.notifications_exchange),
        ] {
            vars.push((format!("ASTUTE_BRIDGE__AMQP__{key}"), value.clone()));
        }
        vars
    }

    /// The next cast, or `None` if none arrives within `wait`.
    pub async fn next_cast_within(&mut self, wait: Duration) -> Option<Value> {
        let delivery = tokio::time::timeout(wait, self.casts.next()).await.ok()??;
        let delivery = delivery.expect("delivery");
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
        Some(serde_json::from_slice(&delivery.data).expect("a cast is JSON"))
    }

    /// Sends a request with a fresh message id and returns the answer.
    pub async fn request(&mut self, method: &str, args: Value) -> Value {
        let id = uuid::Uuid::new_v4().to_string();
        self.request_with_id(method, args, &id).await
    }

    /// Sends a request with the given message id and returns the answer.
    pub async fn request_with_id(&mut self, method: &str, args: Value, message_id: &str) -> Value {
        self.request_raw(
            json!({"method": method, "args": args})
                .to_string()
                .as_bytes(),
            method,
            message_id,
        )
        .await
    }

    /// Sends any body as a request and returns the answer.
    pub async fn request_raw(&mut self, body: &[u8], method: &str, message_id: &str) -> Value {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(message_id.into())
            .with_correlation_id(correlation_id.as_str().into())
            .with_reply_to(self.answer_queue.as_str().into());
        self.publish(
            &self.settings.amqp.request_exchange.clone(),
            &format!("request.{method}"),
            body,
            properties,
        )
        .await;
        loop {
            let (answer, answered) = next_json(&mut self.answers, "an answer").await;
            if let Some(earlier) = answered.as_ref().filter(|a| self.answered.contains(*a)) {
                eprintln!("a repeated answer to an earlier request ({earlier}) was skipped");
                continue;
            }
            assert_eq!(
                answered.as_deref(),
                Some(correlation_id.as_str()),
                "the answer carries the request's correlation_id"
            );
            self.answered.insert(correlation_id);
            return answer;
        }
    }

    /// A request expected to succeed; returns its result.
    pub async fn ok(&mut self, method: &str, args: Value) -> Value {
        let answer = self.request(method, args.clone()).await;
        assert_eq!(answer["ok"], true, "{method} {args} answered {answer}");
        answer["result"].clone()
    }

    /// A request expected to be refused; returns the error code.
    pub async fn refused(&mut self, method: &str, args: Value) -> String {
        let answer = self.request(method, args.clone()).await;
        assert_eq!(
            answer["ok"], false,
            "{method} {args} should be refused, answered {answer}"
        );
        answer["error"]["message"]
            .as_str()
            .map(|m| assert!(!m.is_empty()))
            .unwrap_or_default();
        answer["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A request expected to be refused; returns the error code and its human message.
    pub async fn refusal(&mut self, method: &str, args: Value) -> (String, String) {
        let answer = self.request(method, args.clone()).await;
        assert_eq!(
            answer["ok"], false,
            "{method} {args} should be refused, answered {answer}"
        );
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        (
            text(&answer["error"]["code"]),
            text(&answer["error"]["message"]),
        )
    }

    /// Runs a statement on the bridge's database (for states no request can reach).
    pub async fn execute(&self, sql: &str) {
        self.db
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The next cast Astute would receive on `naily`.
    pub async fn next_cast(&mut self) -> Value {
        next_json(&mut self.casts, "a deploy cast on naily").await.0
    }

    /// The next cast Astute would receive on `naily`, as the bytes sent.
    pub async fn next_cast_text(&mut self) -> String {
        let delivery = next_delivery(&mut self.casts, "a deploy cast on naily").await;
        String::from_utf8(delivery.data).expect("a cast is UTF-8")
    }

    /// The task's `cache` column (the exact cast sent), which the relay writes once the broker
    /// has confirmed the cast; waits for it, and is `None` when it is still empty after the
    /// usual patience.
    pub async fn stored_cast(&self, task_uuid: &str) -> Option<String> {
        let backend = self.db.get_database_backend();
        let sql = match backend {
            sea_orm::DbBackend::Postgres => {
                "SELECT CAST(cache AS text) AS cache FROM tasks WHERE uuid = $1"
            }
            _ => "SELECT CAST(cache AS text) AS cache FROM tasks WHERE uuid = ?",
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let row = self
                .db
                .query_one_raw(sea_orm::Statement::from_sql_and_values(
                    backend,
                    sql,
                    [task_uuid.into()],
                ))
                .await
                .expect("read the task's cache")
                .expect("the task exists");
            let cache = row.try_get::<Option<String>>("", "cache").expect("cache");
            if cache.is_some() || Instant::now() >= deadline {
                return cache;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next notification published for operators, with its routing key.
    pub async fn next_notification(&mut self) -> (String, Value) {
        let delivery = next_delivery(&mut self.notifications, "a notification").await;
        let body = serde_json::from_slice(&delivery.data).expect("notification is JSON");
        (delivery.routing_key.to_string(), body)
    }

    /// Publishes a reply as Astute does.
    pub async fn reply(&self, args: Value) {
        self.reply_raw(
            json!({"method": "deploy_resp", "args": args})
                .to_string()
                .as_bytes(),
        )
        .await;
    }

    /// Publishes any body on Astute's reply exchange.
    pub async fn reply_raw(&self, body: &[u8]) {
        let props = BasicProperties::default().with_content_type("application/json".into());
        self.publish(
            &self.settings.amqp.nailgun_exchange,
            &self.settings.amqp.nailgun_routing_key,
            body,
            props,
        )
        .await;
    }

    async fn publish(&self, exchange: &str, key: &str, body: &[u8], properties: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(
            confirm.is_ack() && confirm.take_message().is_none(),
            "the message reached a queue"
        );
    }

    /// Takes the next message from the dead-letter queue.
    pub async fn next_dead_letter(&self) -> lapin::message::BasicGetMessage {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(m) = self
                .channel
                .basic_get(
                    self.settings.amqp.dead_letter_queue.as_str().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .expect("basic.get")
            {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no dead letter within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads the cluster (with nodes and latest task) until `done` holds for it.
    pub async fn cluster_until(
        &mut self,
        id: i64,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let cluster = self.ok("get_cluster", json!({"cluster_id": id})).await;
            if done(&cluster) {
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "cluster never reached: {what}; last seen {cluster}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a `SELECT COUNT(*) AS n …` until `done` holds for its value.
    pub async fn rows_until(&self, sql: &str, what: &str, done: impl Fn(i64) -> bool) -> i64 {
        self.rows_until_within(sql, what, done, PATIENCE).await
    }

    /// `rows_until` with its own deadline.
    pub async fn rows_until_within(
        &self,
        sql: &str,
        what: &str,
        done: impl Fn(i64) -> bool,
        patience: Duration,
    ) -> i64 {
        let deadline = Instant::now() + patience;
        loop {
            let row = self
                .db
                .query_one_raw(sea_orm::Statement::from_string(
                    self.db.get_database_backend(),
                    sql.to_string(),
                ))
                .await
                .expect("query")
                .expect("a row");
            let n = row.try_get::<i64>("", "n").expect("n");
            if done(n) {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "never reached: {what}; last value {n}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Counts rows of a table, for "nothing changed" checks.
    pub async fn count(&self, table: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .expect("count")
            .expect("a row");
        row.try_get::<i64>("", "n").expect("n")
    }

    /// Stops the bridge as SIGTERM would, checks it stopped cleanly, and removes the test's
    /// queues, exchanges and database.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("bridge task")
                .expect("the bridge stopped without error");
        }
        let a = &self.settings.amqp;
        for q in [
            &a.naily_queue,
            &a.nailgun_queue,
            &a.dead_letter_queue,
            &a.request_queue,
            &self.answer_queue,
            &self.notification_queue,
        ] {
            let _ = self
                .channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for e in [
            &a.naily_exchange,
            &a.naily_service_exchange,
            &a.nailgun_exchange,
            &a.request_exchange,
            &a.notifications_exchange,
        ] {
            let _ = self
                .channel
                .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        // lapin's close may never resolve; the test is over either way.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.connection.close(200, "test done".into()),
        )
        .await;
        self.db.close_by_ref().await.ok();
        if let (Backend::Postgres, Some(name)) = (self.backend, &self.pg_database) {
            let admin = Database::connect(postgres_admin_url())
                .await
                .expect("admin connection");
            admin
                .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                .await
                .expect("drop the test database");
        }
    }
}

async fn consume(channel: &Channel, queue: &str, what: &str) -> Consumer {
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

async fn declare_durable(channel: &Channel, queue: &str, what: &str) {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

async fn next_delivery(consumer: &mut Consumer, what: &str) -> lapin::message::Delivery {
    let delivery = tokio::time::timeout(PATIENCE, consumer.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {PATIENCE:?}"))
        .expect("consumer open")
        .expect("delivery");
    delivery.ack(BasicAckOptions::default()).await.expect("ack");
    delivery
}

async fn next_json(consumer: &mut Consumer, what: &str) -> (Value, Option<String>) {
    let delivery = next_delivery(consumer, what).await;
    let body = serde_json::from_slice(&delivery.data)
        .unwrap_or_else(|e| panic!("{what} is not JSON: {e}"));
    (
        body,
        delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.to_string()),
    )
}

/// Why a message was dead-lettered, as the bridge's own tools read it.
pub fn dead_letter_reason(message: &lapin::message::BasicGetMessage) -> Option<String> {
    astute_bridge::amqp::dead_letters::reason(message)
}

pub fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Loads the fixture releases and one fixture cluster (by name) into the bridge; returns
/// (cluster id, release ids by [name, version]).
pub async fn load_fixture(
    bridge: &mut Bridge,
    cluster_name: &str,
) -> (i64, Vec<(String, String, i64)>) {
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/patching-demo.json")).expect("fixture");
    let mut releases = Vec::new();
    for release in fixture["releases"].as_array().expect("releases") {
        let created = bridge.ok("create_release", release.clone()).await;
        releases.push((
            release["name"].as_str().unwrap_or_default().to_string(),
            release["version"].as_str().unwrap_or_default().to_string(),
            created["id"].as_i64().expect("id"),
        ));
    }
    let cluster = fixture["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["name"] == cluster_name)
        .expect("the named fixture cluster")
        .clone();
    let release_id = release_id(
        &releases,
        cluster["release"][0].as_str().unwrap_or_default(),
        cluster["release"][1].as_str().unwrap_or_default(),
    );
    let created = bridge
        .ok(
            "create_cluster",
            json!({"name": cluster["name"], "release_id": release_id, "mode": cluster["mode"],
                   "status": cluster["status"], "attributes": cluster["attributes"]}),
        )
        .await;
    let cluster_id = created["id"].as_i64().expect("cluster id");
    bridge
        .ok(
            "add_nodes",
            json!({"cluster_id": cluster_id, "nodes": cluster["nodes"]}),
        )
        .await;
    (cluster_id, releases)
}

/// The id of a fixture release.
pub fn release_id(releases: &[(String, String, i64)], name: &str, version: &str) -> i64 {
    releases
        .iter()
        .find(|(n, v, _)| n == name && v == version)
        .map(|(_, _, id)| *id)
        .unwrap_or_else(|| panic!("no fixture release {name} {version}"))
}

/// Declares each scenario once per backend: `mod sqlite { … }` and `mod postgres { … }`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::common::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::common::Backend::Postgres).await
                }
            )+
        }
    };
}
