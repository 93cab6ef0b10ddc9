//! Publishing with publisher confirms: a batch is published, then its confirms are awaited
//! together (a confirm for a persistent message waits for a disk write, so one-by-one would
//! crawl).

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, ShortString};
use lapin::{BasicProperties, Channel, Connection};

use super::{within, AmqpError};
use crate::store::entity::outbox;
use crate::store::outbox::MessageProperties;

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The broker has it.
    Confirmed,
    /// The broker confirmed it but no queue took it (only reported for mandatory messages).
    Unroutable,
    /// Nacked or not confirmed: publish it again later.
    Failed,
    /// The broker closed the channel over this message (published alone to find out).
    Refused,
}

/// A channel in confirm mode.
pub struct Publisher {
    channel: Channel,
    timeout: std::time::Duration,
}

/// JSON, persistent (delivery mode 2), with the given ids.
pub fn json_properties(props: &MessageProperties) -> BasicProperties {
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    if let Some(id) = props
        .message_id
        .as_deref()
        .and_then(|s| ShortString::try_new(s).ok())
    {
        properties = properties.with_message_id(id);
    }
    if let Some(id) = props
        .correlation_id
        .as_deref()
        .and_then(|s| ShortString::try_new(s).ok())
    {
        properties = properties.with_correlation_id(id);
    }
    properties
}

/// Adds a text header.
pub fn with_header(properties: BasicProperties, name: &str, value: &str) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(name.into(), AMQPValue::LongString(value.into()));
    properties.with_headers(headers)
}

impl Publisher {
    pub async fn open(
        connection: &Connection,
        timeout: std::time::Duration,
    ) -> Result<Self, AmqpError> {
        let channel = within(timeout, "channel.open", connection.create_channel()).await?;
        within(
            timeout,
            "confirm.select",
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        Ok(Publisher { channel, timeout })
    }

    /// Closes the channel once nothing is in flight on it.
    pub async fn close(self) {
        let _ = within(
            self.timeout,
            "channel.close",
            self.channel.close(200, "publisher stopped".into()),
        )
        .await;
    }

    /// Publishes one message and waits for its confirm.
    pub async fn publish_one(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<Delivery, AmqpError> {
        let confirm = within(
            self.timeout,
            "basic.publish",
            self.channel.basic_publish(
                short(exchange)?,
                short(routing_key)?,
                BasicPublishOptions {
                    mandatory,
                    ..Default::default()
                },
                body,
                properties,
            ),
        )
        .await?;
        let confirmation = within(self.timeout, "publisher confirm", confirm).await?;
        Ok(classify(confirmation))
    }

    /// Publishes outbox rows and returns each row's fate, in order. A channel error (the
    /// broker closing the channel over one of them) fails that row and every row not yet
    /// confirmed; only a broker that stops answering is an error.
    pub async fn publish_rows(&self, rows: &[outbox::Model]) -> Result<Vec<Delivery>, AmqpError> {
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            // Closed by the broker over an earlier row: the rest would only be discarded (or,
            // sent after lapin's close-ok, cost the whole connection).
            if !self.is_open() {
                break;
            }
            let published = within(
                self.timeout,
                "basic.publish",
                self.channel.basic_publish(
                    short(&row.exchange)?,
                    short(&row.routing_key)?,
                    BasicPublishOptions {
                        mandatory: row.mandatory,
                        ..Default::default()
                    },
                    row.body.as_bytes(),
                    row_properties(row),
                ),
            )
            .await;
            match published {
                Ok(confirm) => pending.push(Some(confirm)),
                Err(AmqpError::Broker(_)) => break, // the channel is closed: the rest fail
                Err(other) => return Err(other),
            }
        }
        let mut fates = Vec::with_capacity(rows.len());
        for confirm in pending.into_iter().flatten() {
            let fate = match within(self.timeout, "publisher confirm", confirm).await {
                Ok(confirmation) => classify(confirmation),
                Err(AmqpError::Broker(_)) => Delivery::Failed,
                Err(other) => return Err(other),
            };
            fates.push(fate);
        }
        fates.resize(rows.len(), Delivery::Failed);
        Ok(fates)
    }

    /// Publishes one outbox row alone and waits for its confirm; a channel error is returned
    /// with the broker's words, so the row that caused it is known.
    pub async fn publish_row(&self, row: &outbox::Model) -> Result<Delivery, AmqpError> {
        self.publish_one(
            &row.exchange,
            &row.routing_key,
            row.body.as_bytes(),
            row_properties(row),
            row.mandatory,
        )
        .await
    }

    /// Whether the channel is still open.
    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }
}

fn row_properties(row: &outbox::Model) -> BasicProperties {
    let props: MessageProperties =
        serde_json::from_value(row.properties.clone()).unwrap_or_default();
    json_properties(&props)
}

fn classify(confirmation: lapin::Confirmation) -> Delivery {
    if confirmation.is_nack() {
        Delivery::Failed
    } else if confirmation.take_message().is_some() {
        Delivery::Unroutable
    } else {
        Delivery::Confirmed
    }
}

fn short(text: &str) -> Result<ShortString, AmqpError> {
    ShortString::try_new(text)
        .map_err(|e| AmqpError::Topology(format!("name too long for AMQP: {e}")))
}
