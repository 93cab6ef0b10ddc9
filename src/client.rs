//! A client of the bridge's request interface (contract section 4), for the command line and
//! the demo: one connection, a private reply queue, and one call at a time matched by
//! `correlation_id`.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use serde_json::{json, Value};

use crate::amqp::{self, within, AmqpError};
use crate::config::AmqpSettings;

/// Why a call did not give a result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the broker: {0}")]
    Broker(#[from] AmqpError),
    #[error("no answer within {0:?}: is `astute-bridge serve` running against this broker?")]
    NoAnswer(Duration),
    /// Nothing on the broker takes requests.
    #[error("{0}: is `astute-bridge serve` running against this broker?")]
    NoBridge(String),
    /// The bridge refused: the contract's error code and its message.
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
    #[error("the answer is not the contract's shape: {0}")]
    BadAnswer(String),
}

/// A connection to the bridge's request exchange.
pub struct Client {
    connection: Connection,
    channel: Channel,
    reply_queue: ShortString,
    answers: Consumer,
    exchange: String,
    wait: Duration,
}

impl Client {
    /// Connects, and declares a private, exclusive reply queue. `wait` bounds each call.
    pub async fn connect(names: &AmqpSettings, wait: Duration) -> Result<Client, ClientError> {
        let timeout = names.timeout();
        let connection = amqp::connect(names.url.expose(), timeout).await?;
        let channel = within(timeout, "channel.open", connection.create_channel()).await?;
        within(
            timeout,
            "confirm.select",
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        let queue = within(
            timeout,
            "queue.declare",
            channel.queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await?;
        let reply_queue = queue.name().clone();
        let answers = within(
            timeout,
            "basic.consume",
            channel.basic_consume(
                reply_queue.clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await?;
        Ok(Client {
            connection,
            channel,
            reply_queue,
            answers,
            exchange: names.request_exchange.clone(),
            wait,
        })
    }

    /// Calls `method` and returns its result, or the bridge's refusal.
    pub async fn call(&mut self, method: &str, args: Value) -> Result<Value, ClientError> {
        let answer = self.call_raw(method, args).await?;
        if answer["ok"] == true {
            return Ok(answer["result"].clone());
        }
        let text = |v: &Value| v.as_str().map(str::to_string);
        match (
            text(&answer["error"]["code"]),
            text(&answer["error"]["message"]),
        ) {
            (Some(code), Some(message)) => Err(ClientError::Refused { code, message }),
            _ => Err(ClientError::BadAnswer(answer.to_string())),
        }
    }

    /// Calls `method` and returns the whole answer, `{"ok": …}`.
    pub async fn call_raw(&mut self, method: &str, args: Value) -> Result<Value, ClientError> {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(uuid::Uuid::new_v4().to_string().into())
            .with_correlation_id(correlation_id.as_str().into())
            .with_reply_to(self.reply_queue.clone());
        let body = json!({"method": method, "args": args}).to_string();
        let wait = self.wait;
        let exchange = self.exchange.clone();
        let no_bridge = |err: AmqpError| -> ClientError {
            if err.to_string().contains("NOT_FOUND") {
                ClientError::NoBridge(format!("the request exchange '{exchange}' does not exist"))
            } else {
                err.into()
            }
        };
        let confirm = within(
            wait,
            "basic.publish",
            self.channel.basic_publish(
                self.exchange.as_str().into(),
                format!("request.{method}").into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body.as_bytes(),
                properties,
            ),
        )
        .await
        .map_err(no_bridge)?;
        let confirmation = within(wait, "publisher confirm", confirm)
            .await
            .map_err(no_bridge)?;
        if confirmation.take_message().is_some() {
            return Err(ClientError::NoBridge(format!(
                "no queue takes requests on exchange '{}'",
                self.exchange
            )));
        }
        let answers = &mut self.answers;
        let found = tokio::time::timeout(wait, async {
            while let Some(delivery) = answers.next().await {
                let delivery = delivery.map_err(AmqpError::from)?;
                let matches = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|c| c.as_str())
                    == Some(correlation_id.as_str());
                if matches {
                    return serde_json::from_slice::<Value>(&delivery.data)
                        .map_err(|e| ClientError::BadAnswer(format!("not JSON: {e}")));
                }
            }
            Err(ClientError::Broker(AmqpError::Topology(
                "the broker closed the answer queue".into(),
            )))
        })
        .await;
        found.unwrap_or(Err(ClientError::NoAnswer(wait)))
    }

    /// A private queue bound to the notifications exchange: every notification published from
    /// now on, in the contract's envelope.
    pub async fn notifications(&self, exchange: &str) -> Result<Consumer, ClientError> {
        let timeout = self.wait;
        let channel = within(timeout, "channel.open", self.connection.create_channel()).await?;
        let queue = within(
            timeout,
            "queue.declare",
            channel.queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await?;
        within(
            timeout,
            "queue.bind",
            channel.queue_bind(
                queue.name().clone(),
                exchange.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        let consumer = within(
            timeout,
            "basic.consume",
            channel.basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await?;
        Ok(consumer)
    }

    /// Closes the connection (bounded: a close that hangs must not hang the caller).
    pub async fn close(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.connection.close(200, "done".into()),
        )
        .await;
    }
}
