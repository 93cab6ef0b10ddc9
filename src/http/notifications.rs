//! `/api/notifications/`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::{parse_body, parse_id, ApiError, ApiState};
use crate::core::audit::Targets;
use crate::service::notifications::{self, NotificationFilter};

pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<NotificationFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(filter) = query.map_err(|e| ApiError::invalid(format!("invalid query: {e}")))?;
    Ok(Json(
        notifications::list_notifications(&state.db, filter).await?,
    ))
}

pub async fn create(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = parse_body(&body)?;
    let txn = state.begin().await?;
    let result = notifications::add_notification(&txn, &state.ctx, new).await;
    let added = state
        .finish_audited(txn, "add_notification", Targets::default(), result)
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

pub async fn mark(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let notification_id = parse_id("notification", &id)?;
    let mark = parse_body(&body)?;
    let txn = state.begin().await?;
    let result = notifications::mark_notification(&txn, notification_id, mark).await;
    Ok(Json(
        state
            .finish_audited(txn, "mark_notification", Targets::default(), result)
            .await?,
    ))
}
