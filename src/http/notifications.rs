//! `/api/notifications/`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::audit::Actor;
use super::{parse_body, parse_id, ApiError, ApiState, ErrorBody};
use crate::core::audit::Targets;
use crate::service::notifications::{self, NotificationFilter};

#[utoipa::path(get, path = "/api/notifications/", tag = "notifications",
    params(("cluster_id" = Option<i32>, Query, description = "Only this cluster's"),
        ("status" = Option<String>, Query, description = "read or unread"),
        ("before_id" = Option<i32>, Query, description = "Only notifications older than this id (the last of the previous page)"),
        ("limit" = Option<u64>, Query, description = "At most this many (1 to 1000, default 1000)")),
    responses((status = 200, description = "Notifications, newest first", body = Object),
        (status = 400, description = "Invalid filter", body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<NotificationFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(filter) = query.map_err(|e| ApiError::invalid(format!("invalid query: {e}")))?;
    Ok(Json(
        notifications::list_notifications(&state.db, filter).await?,
    ))
}

#[utoipa::path(post, path = "/api/notifications/", tag = "notifications",
    request_body(content = Object, description = "topic, message, optional cluster_id, node_id, task_id"),
    responses((status = 201, description = "The notification", body = Object),
        (status = 400, description = "Invalid notification", body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    actor: Actor,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = parse_body(&body)?;
    let txn = state.begin().await?;
    let result = notifications::add_notification(&txn, &state.ctx, new).await;
    let added = state
        .finish_audited(txn, &actor, "add_notification", Targets::default(), result)
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

#[utoipa::path(put, path = "/api/notifications/{id}/", tag = "notifications",
    params(("id" = i32, Path, description = "Notification id")),
    request_body(content = Object, description = "{\"status\": \"read\"} or unread"),
    responses((status = 200, description = "The notification", body = Object),
        (status = 400, description = "Invalid status", body = ErrorBody),
        (status = 404, description = "No such notification", body = ErrorBody)))]
pub async fn mark(
    State(state): State<ApiState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let notification_id = parse_id("notification", &id)?;
    let mark = parse_body(&body)?;
    let txn = state.begin().await?;
    let result = notifications::mark_notification(&txn, notification_id, mark).await;
    Ok(Json(
        state
            .finish_audited(txn, &actor, "mark_notification", Targets::default(), result)
            .await?,
    ))
}
