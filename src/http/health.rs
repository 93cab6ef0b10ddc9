//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::ApiState;
use crate::store::outbox;
use crate::telemetry;

/// The process answers.
pub async fn live() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and the broker connection is up.
pub async fn ready(State(state): State<ApiState>) -> impl IntoResponse {
    let database = state.db.execute_unprepared("SELECT 1").await.is_ok();
    let broker = state.broker.connected();
    let status = if database && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"database": database, "broker": broker})),
    )
}

/// Prometheus text format.
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    telemetry::broker_connected(state.broker.connected());
    if let Ok(backlog) = outbox::backlog(&state.db).await {
        telemetry::outbox_backlog(backlog);
    }
    let body = telemetry::metrics_handle()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
