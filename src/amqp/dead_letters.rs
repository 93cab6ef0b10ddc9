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

/// Headers the broker sets when it dead-letters a message itself (a quorum queue's
/// `delivery-limit`, a TTL, a reject without requeue).
const FIRST_DEATH_REASON: &str = "x-first-death-reason";
const FIRST_DEATH_QUEUE: &str = "x-first-death-queue";
const FIRST_DEATH_EXCHANGE: &str = "x-first-death-exchange";
const DEATHS: &str = "x-death";

/// Why a message was dead-lettered: the bridge's `x-bridge-reason` header, or else the
/// broker's own `x-first-death-reason` and the queue it left.
pub fn reason(message: &BasicGetMessage) -> Option<String> {
    reason_in(message.delivery.properties.headers().as_ref()?)
}

fn reason_in(headers: &FieldTable) -> Option<String> {
    if let Some(ours) = text(headers, REASON_HEADER) {
        return Some(ours);
    }
    let broker = text(headers, FIRST_DEATH_REASON)?;
    let queue = text(headers, FIRST_DEATH_QUEUE).unwrap_or_else(|| "?".into());
    Some(format!(
        "{broker} in queue '{queue}' (dead-lettered by the broker)"
    ))
}

fn text(headers: &FieldTable, key: &str) -> Option<String> {
    match headers.inner().get(key)? {
        AMQPValue::LongString(text) => Some(text.to_string()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// Where a dead letter is replayed: a request the broker dead-lettered from the request
/// queue goes back to the exchange and routing key it came with; anything else is a reply and
/// goes to Astute's reply exchange.
fn replay_target(headers: &FieldTable, names: &AmqpSettings) -> (String, String) {
    let reply = || {
        (
            names.nailgun_exchange.clone(),
            names.nailgun_routing_key.clone(),
        )
    };
    if text(headers, FIRST_DEATH_QUEUE).as_deref() != Some(names.request_queue.as_str()) {
        return reply();
    }
    let Some(exchange) = text(headers, FIRST_DEATH_EXCHANGE) else {
        return reply();
    };
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get(DEATHS) else {
        return reply();
    };
    let routing_key = deaths.as_slice().iter().find_map(|death| match death {
        AMQPValue::FieldTable(death)
            if text(death, "queue").as_deref() == Some(names.request_queue.as_str()) =>
        {
            match death.inner().get("routing-keys") {
                Some(AMQPValue::FieldArray(keys)) => match keys.as_slice().first() {
                    Some(AMQPValue::LongString(key)) => Some(key.to_string()),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    });
    match routing_key {
        Some(key) => (exchange, key),
        None => reply(),
    }
}

/// The headers a replayed message keeps: not the reasons, so that a message dead-lettered
/// again shows its new reason, not the old one.
fn replayed_headers(headers: &FieldTable) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in headers.inner() {
        let key_text = key.as_str();
        let reason = key_text == REASON_HEADER
            || key_text == DEATHS
            || key_text.starts_with("x-first-death-")
            || key_text.starts_with("x-last-death-");
        if !reason {
            table.insert(key.clone(), value.clone());
        }
    }
    table
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

/// Publishes up to `limit` dead letters again (see `replay_target`; without the reason
/// headers) and removes each from the dead-letter queue once the broker confirmed it.
pub async fn replay(
    connection: &Connection,
    names: &AmqpSettings,
    limit: usize,
) -> Result<usize, AmqpError> {
    let publisher = Publisher::open(connection, names.timeout()).await?;
    let (channel, taken) = take(connection, names, limit).await?;
    let mut replayed = 0;
    for message in taken {
        let headers = message
            .delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        let (exchange, routing_key) = replay_target(&headers, names);
        let properties = message
            .delivery
            .properties
            .clone()
            .with_headers(replayed_headers(&headers));
        let fate = publisher
            .publish_one(
                &exchange,
                &routing_key,
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

#[cfg(test)]
mod tests {
    use lapin::types::{FieldArray, ShortString};

    use super::*;

    fn names() -> AmqpSettings {
        crate::config::Settings::load(None)
            .expect("default settings")
            .amqp
    }

    fn long(text: &str) -> AMQPValue {
        AMQPValue::LongString(text.into())
    }

    /// Headers as RabbitMQ sets them when it dead-letters a message from `queue`.
    fn broker_dead_lettered(queue: &str, exchange: &str, routing_key: &str) -> FieldTable {
        let mut death = FieldTable::default();
        death.insert(ShortString::from("queue"), long(queue));
        death.insert(ShortString::from("reason"), long("delivery_limit"));
        death.insert(ShortString::from("exchange"), long(exchange));
        death.insert(
            ShortString::from("routing-keys"),
            AMQPValue::FieldArray(FieldArray::from(vec![long(routing_key)])),
        );
        let mut headers = FieldTable::default();
        headers.insert(FIRST_DEATH_REASON.into(), long("delivery_limit"));
        headers.insert(FIRST_DEATH_QUEUE.into(), long(queue));
        headers.insert(FIRST_DEATH_EXCHANGE.into(), long(exchange));
        headers.insert(
            DEATHS.into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
        );
        headers.insert("x-kept".into(), long("yes"));
        headers
    }

    #[test]
    fn the_bridges_reason_wins_over_the_brokers() {
        let mut headers = broker_dead_lettered("nailgun", "nailgun", "nailgun");
        assert_eq!(
            reason_in(&headers).as_deref(),
            Some("delivery_limit in queue 'nailgun' (dead-lettered by the broker)")
        );
        headers.insert(REASON_HEADER.into(), long("unknown task 'x'"));
        assert_eq!(reason_in(&headers).as_deref(), Some("unknown task 'x'"));
        assert_eq!(reason_in(&FieldTable::default()), None);
    }

    #[test]
    fn a_request_goes_back_where_it_came_from_and_a_reply_to_astutes_exchange() {
        let names = names();
        let request = broker_dead_lettered(
            &names.request_queue,
            &names.request_exchange,
            "request.update_cluster",
        );
        assert_eq!(
            replay_target(&request, &names),
            (
                names.request_exchange.clone(),
                "request.update_cluster".to_string()
            )
        );
        let reply = broker_dead_lettered(&names.nailgun_queue, "nailgun", "nailgun");
        let expected = (
            names.nailgun_exchange.clone(),
            names.nailgun_routing_key.clone(),
        );
        assert_eq!(replay_target(&reply, &names), expected);
        assert_eq!(replay_target(&FieldTable::default(), &names), expected);
    }

    #[test]
    fn a_replayed_message_keeps_no_reason() {
        let mut headers = broker_dead_lettered("nailgun", "nailgun", "nailgun");
        headers.insert(REASON_HEADER.into(), long("why"));
        headers.insert("x-last-death-reason".into(), long("delivery_limit"));
        let kept = replayed_headers(&headers);
        let keys: Vec<&str> = kept.inner().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, vec!["x-kept"]);
    }
}
