//! A consumer on its own channel with manual acks and a prefetch bound, shared by the reply and
//! request consumers.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};

use super::{within, AmqpError};

pub struct Subscription {
    channel: Channel,
    consumer: Consumer,
    tag: String,
    queue: String,
    timeout: Duration,
}

impl Subscription {
    /// Opens a channel, sets its prefetch and starts consuming `queue`.
    pub async fn open(
        connection: &Connection,
        queue: &str,
        role: &str,
        prefetch: u16,
        timeout: Duration,
    ) -> Result<Subscription, AmqpError> {
        let channel = within(timeout, "channel.open", connection.create_channel()).await?;
        within(
            timeout,
            "basic.qos",
            channel.basic_qos(prefetch, BasicQosOptions::default()),
        )
        .await?;
        let tag = format!("astute-bridge-{role}-{}", uuid::Uuid::new_v4());
        let consumer = within(
            timeout,
            "basic.consume",
            channel.basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        tracing::info!(queue, "consuming {role}");
        Ok(Subscription {
            channel,
            consumer,
            tag,
            queue: queue.to_string(),
            timeout,
        })
    }

    /// The next delivery. The stream ending means the broker cancelled the consumer (the queue
    /// was deleted, say): that is an error, never a silent stop.
    pub async fn next(&mut self) -> Result<Delivery, AmqpError> {
        match self.consumer.next().await {
            Some(Ok(delivery)) => Ok(delivery),
            Some(Err(err)) => Err(err.into()),
            None => Err(AmqpError::Topology(format!(
                "the broker cancelled the consumer of '{}' (was the queue deleted?)",
                self.queue
            ))),
        }
    }

    /// Stops deliveries; those already received but not acked go back to the queue when the
    /// channel closes.
    pub async fn cancel(&self) {
        let _ = within(
            self.timeout,
            "basic.cancel",
            self.channel
                .basic_cancel(self.tag.as_str().into(), BasicCancelOptions::default()),
        )
        .await;
    }

    /// Closes the channel (after the in-flight deliveries were acked), so that closing the
    /// connection finds no channel half-closed.
    pub async fn close(self) {
        let _ = within(
            self.timeout,
            "channel.close",
            self.channel.close(200, "consumer stopped".into()),
        )
        .await;
    }
}
