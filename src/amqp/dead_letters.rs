//! Operator tools for the dead-letter queue: list what is there and why, and replay messages
//! to Astute's reply exchange once their cause is fixed (a task created late, say).

use lapin::message::BasicGetMessage;
use lapin::options::BasicGetOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::Connection;
use serde_json::{json, Value};

use super::publisher::{Delivery, Publisher};
use super::replies::REASON_HEADER;
use super::settle::{ack, requeue};
use super::{within, AmqpError};
use crate::config::AmqpSettings;

/// Longest body shown by `list`.
const SHOWN_BODY_CHARS: usize = 2000;

/// Why a message was dead-lettered (its `x-bridge-reason` header).
pub fn reason(message: &BasicGetMessage) -> Option<String> {
    match message
        .delivery
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get(REASON_HEADER)?
    {
        AMQPValue::LongString(text) => Some(text.to_string()),
        other => Some(format!("{other:?}")),
    }
}

async fn take(
    connection: &Connection,
    names: &AmqpSettings,
    limit: usize,
) -> Result<(lapin::Channel, Vec<BasicGetMessage>), AmqpError> {
    let channel = within(names.timeout(), "channel.open", connection.create_channel()).await?;
    let mut taken = Vec::new();
    while taken.len() < limit {
        let got = within(
            names.timeout(),
            "basic.get",
            channel.basic_get(
                names.dead_letter_queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            ),
        )
        .await?;
        match got {
            Some(message) => taken.push(message),
            None => break,
        }
    }
    Ok((channel, taken))
}

/// The first `limit` dead letters with their reasons; they stay in the queue.
pub async fn list(
    connection: &Connection,
    names: &AmqpSettings,
    limit: usize,
) -> Result<Vec<Value>, AmqpError> {
    let (channel, taken) = take(connection, names, limit).await?;
    let mut shown = Vec::with_capacity(taken.len());
    for message in &taken {
        let body = String::from_utf8_lossy(&message.delivery.data);
        shown.push(json!({
            "reason": reason(message),
            "body": body.chars().take(SHOWN_BODY_CHARS).collect::<String>(),
            "bytes": message.delivery.data.len(),
        }));
    }
    // Held until now so that each message is listed once; all go back to the queue.
    for message in taken {
        requeue(&message.delivery, names.timeout()).await?;
    }
    let _ = channel.close(200, "listed".into()).await;
    Ok(shown)
}

/// Publishes up to `limit` dead letters to Astute's reply exchange again (without the reason
/// header) and removes each from the dead-letter queue once the broker confirmed it.
pub async fn replay(
    connection: &Connection,
    names: &AmqpSettings,
    limit: usize,
) -> Result<usize, AmqpError> {
    let publisher = Publisher::open(connection, names.timeout()).await?;
    let (channel, taken) = take(connection, names, limit).await?;
    let mut replayed = 0;
    for message in taken {
        let mut headers = message
            .delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        let kept: FieldTable = {
            let mut table = FieldTable::default();
            for (key, value) in headers.inner() {
                if key.as_str() != REASON_HEADER {
                    table.insert(key.clone(), value.clone());
                }
            }
            table
        };
        headers = kept;
        let properties = message.delivery.properties.clone().with_headers(headers);
        let fate = publisher
            .publish_one(
                &names.nailgun_exchange,
                &names.nailgun_routing_key,
                &message.delivery.data,
                properties,
                true,
            )
            .await?;
        if fate == Delivery::Confirmed {
            ack(&message.delivery, names.timeout()).await?;
            replayed += 1;
        } else {
            requeue(&message.delivery, names.timeout()).await?;
        }
    }
    let _ = channel.close(200, "replayed".into()).await;
    publisher.close().await;
    Ok(replayed)
}
