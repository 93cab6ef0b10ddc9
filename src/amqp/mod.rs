//! The broker adapter: connection, topology, the outbox relay, and the two consumers (Astute's
//! replies and other services' requests).

pub mod dead_letters;
pub mod publisher;
pub mod relay;
pub mod replies;
pub mod reply_retry;
pub mod requests;
pub mod settle;
pub mod subscription;
pub mod topology;

use std::future::Future;
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker did not answer {0} within the timeout")]
    Timeout(&'static str),
    #[error("{0}")]
    Topology(String),
    /// A peer declared one of our names with other arguments: retrying cannot help.
    #[error("{0}")]
    Inequivalent(String),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
}

/// Awaits a broker operation with a deadline: a blocked or dead connection must not hang us.
pub async fn within<T>(
    limit: Duration,
    what: &'static str,
    fut: impl Future<Output = Result<T, lapin::Error>>,
) -> Result<T, AmqpError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(AmqpError::Timeout(what)),
    }
}

/// Connects to the broker.
pub async fn connect(url: &str, limit: Duration) -> Result<Connection, AmqpError> {
    within(
        limit,
        "connection.open",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
}
