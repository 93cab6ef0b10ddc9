//! `/api/releases/`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::audit::Actor;
use super::{parse_body, parse_id, ApiError, ApiState, ErrorBody};
use crate::core::audit::Targets;
use crate::service::releases::{self, ReleaseRef};

#[utoipa::path(get, path = "/api/releases/", tag = "releases",
    responses((status = 200, description = "Releases, each with its versions info", body = Object)))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(releases::list_releases(&state.db).await?))
}

#[utoipa::path(get, path = "/api/releases/{id}/", tag = "releases",
    params(("id" = i32, Path, description = "Release id")),
    responses((status = 200, description = "The release", body = Object),
        (status = 404, description = "No such release", body = ErrorBody)))]
pub async fn show(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let release_id = parse_id("release", &id)?;
    Ok(Json(
        releases::get_release(&state.db, ReleaseRef { release_id }).await?,
    ))
}

#[utoipa::path(post, path = "/api/releases/", tag = "releases",
    request_body(content = Object, description = "Release fields (contract section 1)"),
    responses((status = 201, description = "The release", body = Object),
        (status = 400, description = "Invalid release", body = ErrorBody),
        (status = 409, description = "Same name and version", body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    actor: Actor,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = parse_body(&body)?;
    let txn = state.begin().await?;
    let result = releases::create_release(&txn, &state.ctx, new).await;
    let created = state
        .finish_audited(txn, &actor, "create_release", Targets::default(), result)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(delete, path = "/api/releases/{id}/", tag = "releases",
    params(("id" = i32, Path, description = "Release id")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such release", body = ErrorBody),
        (status = 409, description = "In use by a cluster", body = ErrorBody)))]
pub async fn remove(
    State(state): State<ApiState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let release_id = parse_id("release", &id)?;
    let txn = state.begin().await?;
    let result = releases::delete_release(&txn, ReleaseRef { release_id }).await;
    let targets = Targets {
        release_id: Some(release_id),
        ..Targets::default()
    };
    state
        .finish_audited(txn, &actor, "delete_release", targets, result)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
