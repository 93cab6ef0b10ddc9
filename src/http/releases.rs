//! `/api/releases/`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::{parse_body, parse_id, ApiError, ApiState};
use crate::core::audit::Targets;
use crate::service::releases::{self, ReleaseRef};

pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(releases::list_releases(&state.db).await?))
}

pub async fn show(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let release_id = parse_id("release", &id)?;
    Ok(Json(
        releases::get_release(&state.db, ReleaseRef { release_id }).await?,
    ))
}

pub async fn create(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = parse_body(&body)?;
    let txn = state.begin().await?;
    let result = releases::create_release(&txn, &state.ctx, new).await;
    let created = state
        .finish_audited(txn, "create_release", Targets::default(), result)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn remove(
    State(state): State<ApiState>,
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
        .finish_audited(txn, "delete_release", targets, result)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
