//! Liveness, readiness and metrics: answered by the front, whatever state the bridge is in.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::health::Health;
use crate::store::outbox;
use crate::telemetry;

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The process answers", body = Object)))]
pub async fn live() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// 200 when every part is up and the database and broker answer; else 503 naming each part
/// that is not, with why.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, description = "Every part is up", body = Object),
        (status = 503, description = "Not ready: each part that is not, with why", body = Object)))]
pub async fn ready(State(health): State<Health>) -> impl IntoResponse {
    let readiness = health.readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = Map::new();
    body.insert("ready".into(), Value::Bool(readiness.ready));
    for (part, up) in &readiness.parts {
        body.insert(part.as_str().into(), Value::Bool(*up));
    }
    body.insert("not_ready".into(), json!(readiness.not_ready));
    (status, Json(Value::Object(body)))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    telemetry::broker_connected(health.broker_connected());
    if let Some(db) = health.database() {
        if let Ok(backlog) = outbox::backlog(&db).await {
            telemetry::outbox_backlog(backlog);
        }
        if let Ok(parked) = outbox::parked_count(&db).await {
            telemetry::outbox_parked_now(parked);
        }
    }
    let body = telemetry::metrics_handle()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
