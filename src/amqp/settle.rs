//! Settling a delivery, the same way everywhere: with a deadline, and saying so when an ack
//! could not be sent.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};

use super::{within, AmqpError};

/// Acks after the work committed. An ack that cannot be sent (its channel closed meanwhile)
/// is only logged: the broker requeued the delivery, and applying it again changes nothing.
pub async fn ack(delivery: &Delivery, timeout: Duration) -> Result<(), AmqpError> {
    let sent = within(
        timeout,
        "basic.ack",
        delivery.ack(BasicAckOptions::default()),
    )
    .await?;
    if !sent {
        tracing::warn!(
            "ack not sent: the delivery belongs to a closed channel and will come again"
        );
    }
    Ok(())
}

/// Gives a delivery back to its queue, for later ("not now", not "failed").
pub async fn requeue(delivery: &Delivery, timeout: Duration) -> Result<(), AmqpError> {
    let options = BasicNackOptions {
        requeue: true,
        ..Default::default()
    };
    within(timeout, "basic.nack", delivery.nack(options)).await?;
    Ok(())
}
