//! The broker topology: peers that declare `naily`, `naily_service` and `nailgun` the way Nailgun
//! and Astute do meet no PRECONDITION_FAILED, and a peer's entity declared with other arguments
//! stops the bridge with a clear error instead of being deleted.

use lapin::options::{
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

mod common;

use common::{fresh_prefix, isolated_settings};

use astute_bridge::app::{AppError, Application};
use astute_bridge::config::Settings;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const START_RABBITMQ: &str = "rabbitmq-server -detached && rabbitmqctl await_startup";

fn settings(dir: &std::path::Path) -> Settings {
    isolated_settings(
        &fresh_prefix('g'),
        format!("sqlite://{}?mode=rwc", dir.join("b.db").display()),
    )
}

async fn channel() -> (Connection, Channel) {
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!("RabbitMQ is not reachable ({e}); start it with: {START_RABBITMQ}")
        });
    let ch = conn.create_channel().await.expect("channel");
    (conn, ch)
}

/// Declares the Astute-facing entities as Nailgun (kombu defaults) and Astute declare them.
async fn declare_like_nailgun(ch: &Channel, s: &Settings) -> Result<(), lapin::Error> {
    let a = &s.amqp;
    let durable_x = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let durable_q = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        a.naily_exchange.as_str().into(),
        ExchangeKind::Topic,
        durable_x,
        FieldTable::default(),
    )
    .await?;
    ch.queue_declare(
        a.naily_queue.as_str().into(),
        durable_q,
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        a.naily_queue.as_str().into(),
        a.naily_exchange.as_str().into(),
        a.naily_routing_key.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.exchange_declare(
        a.naily_service_exchange.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: false,
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    ch.exchange_declare(
        a.nailgun_exchange.as_str().into(),
        ExchangeKind::Topic,
        durable_x,
        FieldTable::default(),
    )
    .await?;
    ch.queue_declare(
        a.nailgun_queue.as_str().into(),
        durable_q,
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        a.nailgun_queue.as_str().into(),
        a.nailgun_exchange.as_str().into(),
        a.nailgun_routing_key.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    Ok(())
}

async fn cleanup(ch: &Channel, s: &Settings) {
    let a = &s.amqp;
    for q in [
        &a.naily_queue,
        &a.nailgun_queue,
        &a.dead_letter_queue,
        &a.request_queue,
    ] {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
}

#[tokio::test]
async fn peers_declaring_their_way_before_and_after_the_bridge_meet_no_conflict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = settings(dir.path());
    let (_conn, ch) = channel().await;
    declare_like_nailgun(&ch, &s)
        .await
        .expect("Nailgun declares first");
    let app = Application::build(s.clone())
        .await
        .expect("the bridge accepts the peers' declarations");
    declare_like_nailgun(&ch, &s)
        .await
        .expect("Nailgun declares again after the bridge");
    drop(app);
    cleanup(&ch, &s).await;
}

#[tokio::test]
async fn a_peer_queue_with_other_arguments_is_reported_and_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = settings(dir.path());
    let (_conn, ch) = channel().await;
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(10));
    ch.queue_declare(
        s.amqp.naily_queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args.clone(),
    )
    .await
    .expect("the peer declares naily its way");

    let err = match Application::build(s.clone()).await {
        Ok(_) => panic!("the bridge must refuse to start on an inequivalent naily queue"),
        Err(err) => err,
    };
    let text = err.to_string();
    assert!(matches!(err, AppError::Broker(_)), "{text}");
    assert!(
        text.contains(&format!("queue '{}'", s.amqp.naily_queue)),
        "names the entity: {text}"
    );
    assert!(text.contains("durable=true"), "names our arguments: {text}");
    assert!(
        text.contains("x-max-length") || text.contains("inequivalent"),
        "names the broker's words: {text}"
    );

    // Still there, with its own arguments: a passive-equivalent redeclaration succeeds.
    let (_conn2, ch2) = channel().await;
    ch2.queue_declare(
        s.amqp.naily_queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .expect("the peer's queue was not deleted or changed");
    cleanup(&ch2, &s).await;
}
