//! Update latency: from the moment an `update_cluster` request is published to the bridge's
//! request exchange until the `deploy` cast it causes is received by a consumer of the `naily`
//! queue (the broker has it, routed to Astute's queue), for environments of 10, 100 and 500
//! nodes (3 controllers, the others compute + cinder: one entry per node and role, each listing
//! every entry in `nodes`, so the cast grows with the square of the nodes; `ha_compact`, nodes
//! named `node-1` … as in `benches/cast_memory.rs`, so the casts are the sizes documented there,
//! give or take the digits of the node ids).
//!
//! Run: `cargo bench --bench update_latency` (RabbitMQ running, as for the tests; SQLite in a
//! temporary directory). `BENCH_NODES` (`10,100,500`) picks the sizes, `BENCH_SAMPLES` the
//! samples per size (30 up to 50 nodes, 20 up to 200, 5 above). `BENCH_POSTGRES` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`) runs the bridge on PostgreSQL instead, in a scratch
//! database dropped at the end. `BENCH_SHORT=1` (for CI: `BENCH_SHORT=1 cargo test --bench
//! update_latency`) runs 10 and 20 nodes, 3 samples each: it checks the end state, not the speed.
//!
//! The bridge runs in this process (`Application`, as the integration tests start it) with the
//! default outbox settings, `amqp.max_message_bytes` raised to 256 MiB, and exchange and queue
//! names of its own. Each sample registers a fresh deployed environment through requests (not
//! timed), then times one `update_cluster`: the clock starts just before the request's
//! `basic.publish` and stops when the cast is handed out by the consumer's stream, in a task of
//! its own on a connection of its own. The first update of each size is a warm-up, not counted.
//!
//! Yardstick, measured in the same run, right after each bridge sample: that sample's cast,
//! parsed into a `serde_json::Value` (not timed); timed: `serde_json::to_vec` of that value, its
//! `basic.publish` on a connection of its own (persistent, mandatory, to the same exchange and
//! routing key as the cast) with the publisher confirm awaited, and its receipt by the same
//! consumer of the same `naily` queue (the later of confirm and receipt ends it). `cast bytes` is
//! the median size of a size's casts (they differ slightly: node ids grow).
//!
//! Where the bridge's time goes, from its own log events (a tracing layer in this process, keyed
//! by the request's `message_id`): the request's span opening (the request is read), the event
//! "task started; deploy cast queued" (the cast's size counted and its plan queued in the outbox,
//! inside the transaction), the span closing (the rest of the transaction committed, the request
//! acked); then the answer's arrival on the reply queue (the relay renders the cast from its plan
//! and publishes it, then the answer, on one channel) and the cast's arrival at the consumer.
//!
//! Every sample checks the end state: the answer is `ok` with a running `upgrade` task, the cast
//! is a persistent JSON `deploy` message for that task with one entry per node and role (the
//! node count matches) and every entry listing them all; the task's `cache` holds the very bytes
//! sent (the relay writes it after the broker's confirm: awaited before the yardstick runs, so
//! that write never overlaps it); the yardstick's message arrives whole.
//! No speed is asserted.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/environment.rs"]
mod environment;

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, Bridge};
use environment::release;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// How long one awaited message may take before the bench fails.
const PATIENCE: Duration = Duration::from_secs(120);
/// The event the bridge logs once the cast's plan is queued, inside the transaction.
const CAST_QUEUED: &str = "task started; deploy cast queued";

fn main() {
    if let Ok(url) = std::env::var("BENCH_POSTGRES") {
        // The harness creates (and drops) its scratch database next to this one.
        std::env::set_var("TEST_POSTGRES_URL", url);
    }
    tracing_subscriber::registry()
        .with(
            PhaseClock.with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("astute_bridge", tracing::Level::INFO),
            ),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing::level_filters::LevelFilter::ERROR),
        )
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

/// What the bench runs.
struct Plan {
    short: bool,
    sizes: Vec<usize>,
    samples: Option<usize>,
    backend: Backend,
}

impl Plan {
    fn from_env() -> Plan {
        let short = std::env::var("BENCH_SHORT").is_ok_and(|v| v == "1");
        let sizes = std::env::var("BENCH_NODES")
            .unwrap_or_else(|_| if short { "10,20" } else { "10,100,500" }.into())
            .split(',')
            .map(|n| n.trim().parse().expect("BENCH_NODES: node counts"))
            .collect::<Vec<usize>>();
        assert!(
            sizes.iter().all(|&n| n >= 3),
            "BENCH_NODES: at least 3 nodes (the controllers)"
        );
        let samples = std::env::var("BENCH_SAMPLES")
            .ok()
            .map(|n| n.parse().expect("BENCH_SAMPLES: a number"))
            .or(short.then_some(3));
        let backend = if std::env::var("BENCH_POSTGRES").is_ok() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        Plan {
            short,
            sizes,
            samples,
            backend,
        }
    }

    fn samples(&self, nodes: usize) -> usize {
        self.samples.unwrap_or(match nodes {
            0..=50 => 30,
            51..=200 => 20,
            _ => 5,
        })
    }
}

/// The bench's own view of the broker: a consumer of `naily` and one of a private answer queue,
/// each stamping deliveries in a task of its own; a client connection that publishes the timed
/// requests; a connection that publishes the yardstick's messages.
struct Wires {
    cast_connection: Connection,
    cast_channel: Channel,
    cast_tag: lapin::types::ShortString,
    casts: UnboundedReceiver<(Instant, Delivery)>,
    client_connection: Connection,
    client: Channel,
    answer_queue: String,
    answer_tag: lapin::types::ShortString,
    answers: UnboundedReceiver<(Instant, Delivery)>,
    yardstick_connection: Connection,
    yardstick: Channel,
}

async fn connect() -> Connection {
    Connection::connect(&common::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RabbitMQ is not reachable ({e}); start it with: {}",
                common::START_RABBITMQ
            )
        })
}

/// Consumes `queue` (acking each delivery) and hands out each delivery with the instant the
/// consumer's stream yielded it.
async fn stamped(
    channel: &Channel,
    queue: &str,
) -> (
    lapin::types::ShortString,
    UnboundedReceiver<(Instant, Delivery)>,
) {
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("consume {queue}: {e}"));
    let tag = consumer.tag();
    let (sender, receiver) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(delivery) = consumer.next().await {
            let at = Instant::now();
            let delivery = delivery.expect("delivery");
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
            if sender.send((at, delivery)).is_err() {
                break;
            }
        }
    });
    (tag, receiver)
}

async fn next(
    receiver: &mut UnboundedReceiver<(Instant, Delivery)>,
    what: &str,
) -> (Instant, Delivery) {
    tokio::time::timeout(PATIENCE, receiver.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {PATIENCE:?}"))
        .unwrap_or_else(|| panic!("the consumer of {what} stopped"))
}

impl Wires {
    async fn open(bridge: &Bridge) -> Wires {
        let naily = bridge.settings.amqp.naily_queue.clone();
        // The harness's own consumer of `naily` steps aside: one consumer takes every cast.
        bridge.leave_casts_to_astute().await;
        let cast_connection = connect().await;
        let cast_channel = cast_connection.create_channel().await.expect("channel");
        cast_channel
            .queue_purge(naily.as_str().into(), QueuePurgeOptions::default())
            .await
            .expect("purge naily");
        let (cast_tag, casts) = stamped(&cast_channel, &naily).await;

        let client_connection = connect().await;
        let client = client_connection.create_channel().await.expect("channel");
        client
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let answer_queue = format!("{}.latency.answers", bridge.settings.amqp.request_queue);
        client
            .queue_declare(
                answer_queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the answer queue");
        let (answer_tag, answers) = stamped(&client, &answer_queue).await;

        let yardstick_connection = connect().await;
        let yardstick = yardstick_connection
            .create_channel()
            .await
            .expect("channel");
        yardstick
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        Wires {
            cast_connection,
            cast_channel,
            cast_tag,
            casts,
            client_connection,
            client,
            answer_queue,
            answer_tag,
            answers,
            yardstick_connection,
            yardstick,
        }
    }

    /// Checks nothing is left over, stops the consumers, deletes the answer queue and closes
    /// the connections.
    async fn close(mut self) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            self.casts.try_recv().is_err(),
            "no cast beyond those awaited"
        );
        assert!(
            self.answers.try_recv().is_err(),
            "no answer beyond those awaited"
        );
        let _ = self
            .cast_channel
            .basic_cancel(self.cast_tag.clone(), BasicCancelOptions::default())
            .await;
        let _ = self
            .client
            .basic_cancel(self.answer_tag.clone(), BasicCancelOptions::default())
            .await;
        let _ = self
            .client
            .queue_delete(
                self.answer_queue.as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await;
        for connection in [
            &self.cast_connection,
            &self.client_connection,
            &self.yardstick_connection,
        ] {
            // lapin's close may never resolve; the bench is over either way.
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                connection.close(200, "bench done".into()),
            )
            .await;
        }
    }
}

/// Instants of one request inside the bridge, from its log events.
#[derive(Default, Clone, Copy)]
struct Marks {
    received: Option<Instant>,
    queued: Option<Instant>,
    committed: Option<Instant>,
}

static MARKS: LazyLock<Mutex<HashMap<String, Marks>>> = LazyLock::new(Default::default);

/// The `message_id` of a bridge's `request` span, kept in the span's extensions.
struct RequestId(String);

/// A tracing layer that notes when each request's span opens and closes, and when its cast is
/// queued.
struct PhaseClock;

/// Reads one field as text.
struct Field<'a> {
    name: &'a str,
    value: Option<String>,
}

impl tracing::field::Visit for Field<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == self.name {
            self.value = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == self.name {
            self.value = Some(format!("{value:?}"));
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for PhaseClock {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        if attrs.metadata().name() != "request" {
            return;
        }
        let now = Instant::now();
        let mut field = Field {
            name: "message_id",
            value: None,
        };
        attrs.record(&mut field);
        let (Some(message_id), Some(span)) = (field.value, ctx.span(id)) else {
            return;
        };
        MARKS.lock().expect("marks").insert(
            message_id.clone(),
            Marks {
                received: Some(now),
                ..Marks::default()
            },
        );
        span.extensions_mut().insert(RequestId(message_id));
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let now = Instant::now();
        let mut field = Field {
            name: "message",
            value: None,
        };
        event.record(&mut field);
        if field.value.as_deref() != Some(CAST_QUEUED) {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(RequestId(message_id)) = span.extensions().get::<RequestId>() {
                if let Some(marks) = MARKS.lock().expect("marks").get_mut(message_id) {
                    marks.queued.get_or_insert(now);
                }
                return;
            }
        }
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let now = Instant::now();
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let extensions = span.extensions();
        if let Some(RequestId(message_id)) = extensions.get::<RequestId>() {
            if let Some(marks) = MARKS.lock().expect("marks").get_mut(message_id) {
                marks.committed.get_or_insert(now);
            }
        }
    }
}

/// Entries of a cast: one per node and role.
fn entries(nodes: usize) -> usize {
    nodes + nodes.saturating_sub(3)
}

/// A deployed `ha_compact` environment of `nodes` nodes on release `from`; its id.
async fn environment(bridge: &mut Bridge, name: &str, nodes: usize, from: i64) -> i64 {
    let cluster = bridge
        .ok("create_cluster", environment::cluster(name, &json!(from)))
        .await["id"]
        .as_i64()
        .expect("cluster id");
    let all = environment::nodes(nodes);
    for chunk in all.chunks(1000) {
        let added = bridge
            .ok("add_nodes", json!({"cluster_id": cluster, "nodes": chunk}))
            .await;
        assert_eq!(added.as_array().map(Vec::len), Some(chunk.len()));
    }
    cluster
}

/// One timed update: instants after the request's publish, in milliseconds.
struct UpdateSample {
    received: f64,
    queued: f64,
    committed: f64,
    answered: f64,
    cast: f64,
    body: Vec<u8>,
    size: usize,
    task_uuid: String,
}

/// One timed yardstick message, in milliseconds.
struct YardstickSample {
    serialized: f64,
    confirmed: f64,
    received: f64,
    total: f64,
}

fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1e3
}

/// The cast's shape, read without building a tree.
#[derive(Deserialize)]
struct Cast {
    api_version: String,
    method: String,
    respond_to: String,
    args: CastArgs,
}

#[derive(Deserialize)]
struct CastArgs {
    task_uuid: String,
    deployment_info: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    uid: String,
    nodes: Vec<serde::de::IgnoredAny>,
}

/// Checks a received cast: a persistent JSON `deploy` message for `task_uuid` with one entry
/// per node and role of `nodes` nodes, each listing every entry.
fn check_cast(delivery: &Delivery, task_uuid: &str, nodes: usize) {
    let props = &delivery.properties;
    assert_eq!(
        props.message_id().as_ref().map(|m| m.as_str()),
        Some(task_uuid),
        "the cast's message_id is its task"
    );
    assert_eq!(
        props.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    assert_eq!(*props.delivery_mode(), Some(2), "the cast is persistent");
    let cast: Cast = serde_json::from_slice(&delivery.data).expect("the cast is a deploy message");
    assert_eq!(
        (
            cast.api_version.as_str(),
            cast.method.as_str(),
            cast.respond_to.as_str()
        ),
        ("1", "deploy", "deploy_resp")
    );
    assert_eq!(cast.args.task_uuid, task_uuid);
    let info = &cast.args.deployment_info;
    assert_eq!(info.len(), entries(nodes), "one entry per node and role");
    let uids: HashSet<&str> = info.iter().map(|e| e.uid.as_str()).collect();
    assert_eq!(uids.len(), nodes, "every node of the environment is cast");
    assert!(
        info.iter().all(|e| e.nodes.len() == entries(nodes)),
        "every entry lists every entry"
    );
}

/// Times one `update_cluster` of `cluster` to release `to`, and checks its answer and cast.
async fn update(
    wires: &mut Wires,
    bridge: &Bridge,
    cluster: i64,
    to: i64,
    nodes: usize,
) -> UpdateSample {
    let message_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let body =
        json!({"method": "update_cluster", "args": {"cluster_id": cluster, "release_id": to}})
            .to_string();
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id(message_id.as_str().into())
        .with_correlation_id(correlation_id.as_str().into())
        .with_reply_to(wires.answer_queue.as_str().into());
    let started = Instant::now();
    let confirm = wires
        .client
        .basic_publish(
            bridge.settings.amqp.request_exchange.as_str().into(),
            "request.update_cluster".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body.as_bytes(),
            properties,
        )
        .await
        .expect("publish the request")
        .await
        .expect("the request's confirm");
    assert!(
        confirm.is_ack() && confirm.take_message().is_none(),
        "the request reached the bridge's queue"
    );
    let (answered, answer) = next(&mut wires.answers, "answer to update_cluster").await;
    let (cast_at, cast) = next(&mut wires.casts, "deploy cast on naily").await;

    assert_eq!(
        answer
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some(correlation_id.as_str()),
        "the answer carries the request's correlation_id"
    );
    let answer: Value = serde_json::from_slice(&answer.data).expect("the answer is JSON");
    assert_eq!(answer["ok"], true, "update_cluster answered {answer}");
    let task = &answer["result"];
    assert_eq!(task["status"], "running", "{task}");
    assert_eq!(task["name"], "upgrade", "{task}");
    let task_uuid = task["uuid"].as_str().expect("the task's uuid");
    check_cast(&cast, task_uuid, nodes);

    // The span closes just after the ack; give it a moment if the answer overtook it.
    let marks = loop {
        let marks = MARKS
            .lock()
            .expect("marks")
            .get(&message_id)
            .copied()
            .unwrap_or_default();
        if marks.committed.is_some() || started.elapsed() > PATIENCE {
            break marks;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    MARKS.lock().expect("marks").remove(&message_id);
    let mark = |at: Option<Instant>, what: &str| {
        ms(
            started,
            at.unwrap_or_else(|| panic!("the bridge logged no {what} for the request")),
        )
    };
    UpdateSample {
        received: mark(marks.received, "request span"),
        queued: mark(marks.queued, "queued cast"),
        committed: mark(marks.committed, "closed request span"),
        answered: ms(started, answered),
        cast: ms(started, cast_at),
        size: cast.data.len(),
        body: cast.data,
        task_uuid: task_uuid.to_string(),
    }
}

/// Times the yardstick: `value` serialized, published as the cast is (confirm awaited) and
/// received by the same consumer of the same queue.
async fn yardstick(
    wires: &mut Wires,
    bridge: &Bridge,
    value: &Value,
    size: usize,
) -> YardstickSample {
    let amqp = &bridge.settings.amqp;
    let message_id = uuid::Uuid::new_v4().to_string();
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(message_id.as_str().into());
    let started = Instant::now();
    let body = serde_json::to_vec(value).expect("serialize");
    let serialized = Instant::now();
    let confirm = wires
        .yardstick
        .basic_publish(
            amqp.naily_exchange.as_str().into(),
            amqp.naily_routing_key.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &body,
            properties,
        )
        .await
        .expect("publish the yardstick")
        .await
        .expect("the yardstick's confirm");
    let confirmed = Instant::now();
    let (received, delivery) = next(&mut wires.casts, "yardstick message on naily").await;
    assert!(
        confirm.is_ack() && confirm.take_message().is_none(),
        "the yardstick reached naily"
    );
    assert_eq!(
        delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        Some(message_id.as_str())
    );
    assert_eq!(body.len(), size, "the yardstick is as large as the cast");
    assert_eq!(delivery.data.len(), size, "the yardstick arrived whole");
    YardstickSample {
        serialized: ms(started, serialized),
        confirmed: ms(started, confirmed),
        received: ms(started, received),
        total: ms(started, confirmed.max(received)),
    }
}

/// Median and p99 (nearest rank) of `values`.
fn quantiles(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let mut values: Vec<f64> = values.into_iter().collect();
    assert!(!values.is_empty(), "no samples");
    values.sort_by(f64::total_cmp);
    let rank =
        |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    (median, rank(0.99))
}

fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    quantiles(values).0
}

async fn run() {
    let plan = Plan::from_env();
    let mut bridge = Bridge::start_with(plan.backend, |settings| {
        settings.amqp.max_message_bytes = 256 << 20;
        // The harness polls the outbox every 200 ms; the bench runs the default.
        settings.outbox.poll_interval_ms = astute_bridge::config::Settings::load(None)
            .expect("default settings")
            .outbox
            .poll_interval_ms;
    })
    .await;
    let mut wires = Wires::open(&bridge).await;
    let from = bridge
        .ok("create_release", release("2014.1-5.0", vec![]))
        .await["id"]
        .as_i64()
        .expect("release id");
    let to = bridge
        .ok(
            "create_release",
            release("2014.1.1-5.0.2", vec!["2014.1-5.0"]),
        )
        .await["id"]
        .as_i64()
        .expect("release id");

    println!(
        "update latency: update_cluster published -> deploy cast received on naily; bridge on {}, {}",
        match plan.backend {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        },
        if plan.short { "short run (checks only)" } else { "release figures" }
    );
    println!(
        "yardstick: serde_json::to_vec of the cast parsed into a Value + basic.publish (confirm awaited) + receipt from naily"
    );
    println!(
        "{:>6} {:>12} {:>8} {:>11} {:>11} {:>11} {:>11} {:>12}",
        "nodes",
        "cast bytes",
        "samples",
        "bridge p50",
        "bridge p99",
        "yard p50",
        "yard p99",
        "bridge/yard"
    );
    let mut phases = Vec::new();
    for &nodes in &plan.sizes {
        let samples = plan.samples(nodes);
        let warm_up =
            environment(&mut bridge, &format!("bench-{nodes:04}-w000"), nodes, from).await;
        let warm = update(&mut wires, &bridge, warm_up, to, nodes).await;
        bridge
            .stored_cast(&warm.task_uuid)
            .await
            .expect("the warm-up's cast stored in its task");
        let mut updates = Vec::with_capacity(samples);
        let mut yards = Vec::with_capacity(samples);
        for i in 0..samples {
            let name = format!("bench-{nodes:04}-s{i:03}");
            let cluster = environment(&mut bridge, &name, nodes, from).await;
            let mut sample = update(&mut wires, &bridge, cluster, to, nodes).await;
            // The relay stores the cast in the task once the broker has it: awaited here, so
            // that the write is over before the yardstick runs (not timed).
            let stored = bridge.stored_cast(&sample.task_uuid).await;
            assert!(
                stored.as_deref().map(str::as_bytes) == Some(&sample.body[..]),
                "the task keeps the exact cast sent"
            );
            drop(stored);
            // The yardstick serializes this very cast, parsed beforehand (not timed).
            let value: Value = serde_json::from_slice(&sample.body).expect("the cast is JSON");
            sample.body = Vec::new();
            let size = sample.size;
            updates.push(sample);
            yards.push(yardstick(&mut wires, &bridge, &value, size).await);
        }
        let size = median(updates.iter().map(|s| s.size as f64));
        let (bridge_p50, bridge_p99) = quantiles(updates.iter().map(|s| s.cast));
        let (yard_p50, yard_p99) = quantiles(yards.iter().map(|s| s.total));
        println!(
            "{:>6} {:>12.0} {:>8} {:>8.1} ms {:>8.1} ms {:>8.1} ms {:>8.1} ms {:>12.2}",
            nodes,
            size,
            samples,
            bridge_p50,
            bridge_p99,
            yard_p50,
            yard_p99,
            bridge_p50 / yard_p50
        );
        phases.push((
            nodes,
            [
                median(updates.iter().map(|s| s.received)),
                median(updates.iter().map(|s| s.queued - s.received)),
                median(updates.iter().map(|s| s.committed - s.queued)),
                median(updates.iter().map(|s| s.answered - s.committed)),
                median(updates.iter().map(|s| s.cast - s.answered)),
            ],
            [
                median(yards.iter().map(|s| s.serialized)),
                median(yards.iter().map(|s| s.confirmed - s.serialized)),
                median(yards.iter().map(|s| s.received - s.confirmed)),
            ],
        ));
    }
    println!("where the time goes (medians of each phase, ms):");
    println!(
        "{:>6} | bridge: {:>10} {:>12} {:>10} {:>11} {:>11} | yardstick: {:>8} {:>15} {:>16}",
        "nodes",
        "request in",
        "cast queued",
        "committed",
        "answer out",
        "cast in",
        "to_vec",
        "publish+confirm",
        "confirm->receipt"
    );
    for (nodes, bridge_phases, yard_phases) in phases {
        println!(
            "{:>6} | bridge: {:>10.1} {:>12.1} {:>10.1} {:>11.1} {:>11.1} | yardstick: {:>8.1} {:>15.1} {:>16.1}",
            nodes,
            bridge_phases[0],
            bridge_phases[1],
            bridge_phases[2],
            bridge_phases[3],
            bridge_phases[4],
            yard_phases[0],
            yard_phases[1],
            yard_phases[2]
        );
    }

    wires.close().await;
    assert_eq!(
        bridge
            .queue_depth(&bridge.settings.amqp.naily_queue.clone())
            .await,
        0,
        "naily is drained"
    );
    bridge.stop().await;
    println!("end state checked: every update answered ok with a running upgrade, every cast a deploy of every node, kept byte for byte in its task");
}
