//! Declares every exchange and queue of the contract, exactly as Nailgun and Astute declare
//! theirs (durable queues, no extra arguments), so that peers declaring them meet no
//! PRECONDITION_FAILED, and so that casts wait in `naily` while Astute is down. The queues' type
//! is the vhost's default: classic, or quorum in a vhost created with that default type.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

use super::{within, AmqpError};
use crate::config::AmqpSettings;

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Declares the whole topology on `channel`.
pub async fn declare(channel: &Channel, names: &AmqpSettings) -> Result<(), AmqpError> {
    declare_astute_side(channel, names).await?;
    let t = names.timeout();
    let topic = || ExchangeKind::Topic;
    queue(channel, t, &names.dead_letter_queue).await?;
    exchange(
        channel,
        t,
        &names.request_exchange,
        topic(),
        durable_exchange(),
    )
    .await?;
    queue(channel, t, &names.request_queue).await?;
    bind(
        channel,
        t,
        &names.request_queue,
        &names.request_exchange,
        &names.request_binding,
    )
    .await?;
    exchange(
        channel,
        t,
        &names.notifications_exchange,
        topic(),
        durable_exchange(),
    )
    .await?;
    Ok(())
}

/// Declares what Astute itself declares: `naily` (topic, durable) with its queue, the
/// transient `naily_service` fanout, and `nailgun` (topic, durable) with its queue.
pub async fn declare_astute_side(channel: &Channel, names: &AmqpSettings) -> Result<(), AmqpError> {
    let t = names.timeout();
    let topic = || ExchangeKind::Topic;
    exchange(
        channel,
        t,
        &names.naily_exchange,
        topic(),
        durable_exchange(),
    )
    .await?;
    queue(channel, t, &names.naily_queue).await?;
    bind(
        channel,
        t,
        &names.naily_queue,
        &names.naily_exchange,
        &names.naily_routing_key,
    )
    .await?;
    exchange(
        channel,
        t,
        &names.naily_service_exchange,
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: false,
            auto_delete: true,
            ..Default::default()
        },
    )
    .await?;
    exchange(
        channel,
        t,
        &names.nailgun_exchange,
        topic(),
        durable_exchange(),
    )
    .await?;
    queue(channel, t, &names.nailgun_queue).await?;
    bind(
        channel,
        t,
        &names.nailgun_queue,
        &names.nailgun_exchange,
        &names.nailgun_routing_key,
    )
    .await?;
    Ok(())
}

async fn exchange(
    channel: &Channel,
    t: std::time::Duration,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
) -> Result<(), AmqpError> {
    let ours = format!(
        "type={kind:?}, durable={}, auto_delete={}, arguments={{}}",
        options.durable, options.auto_delete
    );
    within(
        t,
        "exchange.declare",
        channel.exchange_declare(name.into(), kind, options, FieldTable::default()),
    )
    .await
    .map_err(|e| explain(e, "exchange", name, &ours))
}

async fn queue(channel: &Channel, t: std::time::Duration, name: &str) -> Result<(), AmqpError> {
    let ours = "durable=true, exclusive=false, auto_delete=false, arguments={} (the vhost's default queue type)";
    within(
        t,
        "queue.declare",
        channel.queue_declare(name.into(), durable_queue(), FieldTable::default()),
    )
    .await
    .map(|_| ())
    .map_err(|e| explain(e, "queue", name, ours))
}

async fn bind(
    channel: &Channel,
    t: std::time::Duration,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), AmqpError> {
    within(
        t,
        "queue.bind",
        channel.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
}

/// A peer declared the same name with other arguments: say so once, clearly, naming both
/// sides. The peer's entity is never deleted.
fn explain(err: AmqpError, kind: &str, name: &str, ours: &str) -> AmqpError {
    let text = err.to_string();
    if text.contains("PRECONDITION_FAILED") || text.contains("inequivalent") {
        let message = format!(
            "{kind} '{name}' already exists with other arguments; the broker says: {text}; \
             this bridge declares it with: {ours}. Align the peer or set another name in the \
             [amqp] settings; the existing {kind} was left untouched"
        );
        tracing::error!(entity = kind, name, ours, broker = %text, "{message}");
        AmqpError::Inequivalent(message)
    } else {
        err
    }
}
