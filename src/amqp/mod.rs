//! The broker adapter: connection, topology, the outbox relay, and the two consumers (Astute's
//! replies and other services' requests).

pub mod dead_letters;
pub mod nodes;
pub mod publisher;
pub mod relay;
pub mod replies;
pub mod reply_retry;
pub mod requests;
pub mod settle;
pub mod subscription;
pub mod topology;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
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

/// Connects to the broker: to the first node of `url` that answers (`url` may list several,
/// see `nodes`). Each call starts with the node after the one it last connected to, so a
/// bridge that lost its node (and so connects again) moves on to the next one instead of
/// waiting for it.
pub async fn connect(url: &str, limit: Duration) -> Result<Connection, AmqpError> {
    let nodes = nodes::node_urls(url).map_err(|e| AmqpError::Topology(e.to_string()))?;
    let first = next_node(url, nodes.len());
    let mut last_error = None;
    for offset in 0..nodes.len() {
        let index = (first + offset) % nodes.len();
        let node = &nodes[index];
        let opened = within(
            limit,
            "connection.open",
            Connection::connect(node, ConnectionProperties::default()),
        )
        .await;
        match opened {
            Ok(connection) => {
                remember_node(url, index, nodes.len());
                if nodes.len() > 1 {
                    tracing::info!(node = %nodes::display(node), "connected to the broker");
                }
                return Ok(connection);
            }
            Err(err) => {
                if nodes.len() > 1 {
                    tracing::warn!(node = %nodes::display(node), error = %err, "broker node did not answer; trying the next");
                }
                last_error = Some(err);
            }
        }
    }
    Err(last_error.unwrap_or(AmqpError::Timeout("connection.open")))
}

/// Where the next connection to `url` starts: remembered across the bridge's restarts, which
/// build everything again from the settings.
fn next_node(url: &str, count: usize) -> usize {
    cursors()
        .lock()
        .map(|c| c.get(url).copied().unwrap_or(0) % count.max(1))
        .unwrap_or(0)
}

fn remember_node(url: &str, connected: usize, count: usize) {
    if let Ok(mut c) = cursors().lock() {
        c.insert(url.to_string(), (connected + 1) % count.max(1));
    }
}

fn cursors() -> &'static Mutex<HashMap<String, usize>> {
    static CURSORS: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    CURSORS.get_or_init(|| Mutex::new(HashMap::new()))
}
