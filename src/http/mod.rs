//! The HTTP API (contract section 6): Nailgun's paths over the same service functions the AMQP
//! requests use, plus health, readiness and Prometheus metrics. Errors answer
//! `{"error": {"code", "message"}}` with the codes of the AMQP requests.

mod audit;
mod clusters;
mod error;
mod front;
mod health;
mod notifications;
mod page;
mod releases;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, put};
use axum::Router;
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use serde_json::Value;
use tokio::sync::Notify;

use crate::service::{Context, ServiceResult};
use crate::store;

pub use error::ApiError;
pub use front::{serve, Front};

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub db: DatabaseConnection,
    pub ctx: Context,
    /// Wakes the outbox relay after a commit that queued messages.
    pub wake: Arc<Notify>,
}

impl ApiState {
    /// Opens a write transaction for one request.
    pub async fn begin(&self) -> Result<DatabaseTransaction, ApiError> {
        store::begin_write(&self.db)
            .await
            .map_err(ApiError::database)
    }

    /// Commits on success (and wakes the relay for the messages the change queued), rolls
    /// back on a refusal.
    pub async fn finish<T>(
        &self,
        txn: DatabaseTransaction,
        result: ServiceResult<T>,
    ) -> Result<T, ApiError> {
        match result {
            Ok(value) => {
                txn.commit().await.map_err(ApiError::database)?;
                self.wake.notify_one();
                Ok(value)
            }
            Err(err) => {
                let _ = txn.rollback().await;
                Err(err.into())
            }
        }
    }
}

/// Every route of the API (health, readiness and metrics are the front's, see `front`).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/releases/", get(releases::list).post(releases::create))
        .route(
            "/api/releases/{id}/",
            get(releases::show).delete(releases::remove),
        )
        .route("/api/clusters/", get(clusters::list).post(clusters::create))
        .route(
            "/api/clusters/{id}/",
            get(clusters::show).put(clusters::set_pending),
        )
        .route("/api/clusters/{id}/update/", put(clusters::update))
        .route("/api/clusters/{id}/rollback/", put(clusters::rollback))
        .route(
            "/api/clusters/{id}/nodes/",
            axum::routing::post(clusters::add_nodes),
        )
        .route("/api/tasks/{uuid}/", get(clusters::task))
        .route(
            "/api/notifications/",
            get(notifications::list).post(notifications::create),
        )
        .route("/api/notifications/{id}/", put(notifications::mark))
        .route("/api/audit/", get(audit::list))
        .fallback(error::no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Parses a JSON body into typed args; anything else is `invalid_request`.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("the body is not JSON: {e}")))?;
    serde_json::from_value(value).map_err(|e| ApiError::invalid(format!("invalid body: {e}")))
}

/// Parses a numeric path id.
pub(crate) fn parse_id(what: &str, raw: &str) -> Result<i32, ApiError> {
    raw.parse::<i32>()
        .map_err(|_| ApiError::invalid(format!("{what} id must be an integer, not '{raw}'")))
}
