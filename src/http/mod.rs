//! The HTTP API (contract section 6): Nailgun's paths over the same service functions the AMQP
//! requests use, plus health, readiness and Prometheus metrics. Errors answer
//! `{"error": {"code", "message"}}` with the codes of the AMQP requests.

mod audit;
pub mod auth;
mod clusters;
mod error;
mod front;
mod health;
mod notifications;
mod openapi;
mod origin;
mod page;
mod releases;
mod shape;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use serde_json::Value;
use tokio::sync::Notify;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::{Context, ServiceResult};
use crate::store;

pub use auth::{Access, Caller};
pub use error::{ApiError, ErrorBody};
pub use front::{serve, Front};
pub use openapi::openapi;

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

/// Every route of the API, each documented where it is declared (health, readiness and metrics
/// are the front's, see `front`).
fn api_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(releases::list, releases::create))
        .routes(routes!(releases::show, releases::remove))
        .routes(routes!(clusters::list, clusters::create))
        .routes(routes!(clusters::show, clusters::set_pending))
        .routes(routes!(clusters::update))
        .routes(routes!(clusters::rollback))
        .routes(routes!(clusters::add_nodes))
        .routes(routes!(clusters::task))
        .routes(routes!(notifications::list, notifications::create))
        .routes(routes!(notifications::mark))
        .routes(routes!(audit::list))
}

/// The API of one session, with `/api/openapi.json`.
pub fn router(state: ApiState) -> Router {
    let (routes, _) = api_routes().split_for_parts();
    routes
        .route(openapi::PATH, get(openapi::serve))
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
