//! `/api/clusters/` and `/api/tasks/`: clusters, their nodes, updates and rollbacks.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::audit::Actor;
use super::{parse_body, parse_id, ApiError, ApiState, ErrorBody};
use crate::core::audit::Targets;
use crate::core::refusal::ErrorCode;
use crate::service::clusters::{self, ClusterPage, ClusterRef, NewNode, NewNodes};
use crate::service::{patching, tasks, ServiceError};

#[utoipa::path(get, path = "/api/clusters/", tag = "clusters",
    params(("after_id" = Option<i32>, Query, description = "Only clusters after this id (the last of the previous page)"),
        ("limit" = Option<u64>, Query, description = "At most this many (1 to 1000, default 1000)")),
    responses((status = 200, description = "Clusters, in id order", body = Object),
        (status = 400, description = "Invalid query", body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ClusterPage>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(page) = query.map_err(|e| ApiError::invalid(format!("invalid query: {e}")))?;
    Ok(Json(clusters::list_clusters(&state.db, page).await?))
}

#[utoipa::path(get, path = "/api/clusters/{id}/", tag = "clusters", params(("id" = i32, Path, description = "Cluster id")),
    responses((status = 200, description = "The cluster with its nodes and latest task", body = Object),
        (status = 404, description = "No such cluster", body = ErrorBody)))]
pub async fn show(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let cluster_id = parse_id("cluster", &id)?;
    Ok(Json(
        clusters::get_cluster(&state.db, ClusterRef { cluster_id }).await?,
    ))
}

#[utoipa::path(post, path = "/api/clusters/", tag = "clusters",
    request_body(content = Object, description = "name, release_id, mode, optional attributes and status"),
    responses((status = 201, description = "The cluster", body = Object),
        (status = 400, description = "Invalid cluster", body = ErrorBody),
        (status = 404, description = "Unknown release", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    actor: Actor,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = parse_body(&body)?;
    let txn = state.begin().await?;
    let result = clusters::create_cluster(&txn, new, &state.ctx.fuel_version).await;
    let created = state
        .finish_audited(txn, &actor, "create_cluster", Targets::default(), result)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `PUT /api/clusters/{id}/` with `{"pending_release_id": T}`.
#[utoipa::path(put, path = "/api/clusters/{id}/", tag = "clusters", params(("id" = i32, Path, description = "Cluster id")),
    request_body(content = Object, description = "{\"pending_release_id\": T}"),
    responses((status = 200, description = "The cluster", body = Object),
        (status = 400, description = "Not a release it may go to", body = ErrorBody),
        (status = 404, description = "No such cluster or release", body = ErrorBody),
        (status = 409, description = "An operation is running", body = ErrorBody)))]
pub async fn set_pending(
    State(state): State<ApiState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let cluster_id = parse_id("cluster", &id)?;
    let pending = parse_body(&body)?;
    let txn = state.begin().await?;
    let result = patching::set_pending_release(&txn, &state.ctx, cluster_id, pending).await;
    Ok(Json(
        state
            .finish_audited(
                txn,
                &actor,
                "set_pending_release",
                cluster(cluster_id),
                result,
            )
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct UpdateQuery {
    #[serde(default)]
    dry_run: bool,
}

/// `PUT /api/clusters/{id}/update/`: starts the update to the pending release (202), or with
/// `?dry_run=true` answers the verdict and the exact cast, changing nothing (200). A cast over
/// `amqp.max_message_bytes` is refused either way (413, `message_too_large`).
#[utoipa::path(put, path = "/api/clusters/{id}/update/", tag = "clusters", params(("id" = i32, Path, description = "Cluster id"),
        ("dry_run" = Option<bool>, Query, description = "true: answer the verdict and the exact cast, change nothing")),
    responses((status = 202, description = "The task started", body = Object),
        (status = 200, description = "Dry run: the verdict (allowed false with code and reason when refused)", body = Object),
        (status = 400, description = "Refused", body = ErrorBody),
        (status = 404, description = "No such cluster", body = ErrorBody),
        (status = 409, description = "An operation is running", body = ErrorBody),
        (status = 413, description = "The cast would exceed amqp.max_message_bytes", body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    actor: Actor,
    Path(id): Path<String>,
    query: Result<Query<UpdateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query: {e}")))?;
    let cluster_id = parse_id("cluster", &id)?;
    let target = patching::pending_target(&state.db, cluster_id).await;
    if query.dry_run {
        let verdict = match target {
            Ok(target) => patching::check_update(&state.db, &state.ctx, target).await?,
            // No pending release: a verdict like any other refusal (contract section 6).
            Err(ServiceError::Refused(refusal)) if refusal.code == ErrorCode::InvalidRequest => {
                patching::Verdict {
                    allowed: false,
                    code: Some(refusal.code),
                    message: None,
                    operation: None,
                    reason: Some(refusal.message),
                }
            }
            Err(err) => return Err(err.into()),
        };
        // Written once, cast included as it is; the verdict goes as soon as it is written.
        let body = crate::service::answer(&verdict)?;
        drop(verdict);
        let body: Box<str> = body.into();
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            String::from(body),
        )
            .into_response());
    }
    let target = target?;
    let txn = state.begin().await?;
    let result = patching::update_cluster(&txn, &state.ctx, target).await;
    let task = state
        .finish_audited(txn, &actor, "update_cluster", cluster(cluster_id), result)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(task)).into_response())
}

#[utoipa::path(put, path = "/api/clusters/{id}/rollback/", tag = "clusters", params(("id" = i32, Path, description = "Cluster id")),
    responses((status = 202, description = "The task started", body = Object),
        (status = 400, description = "Refused", body = ErrorBody),
        (status = 404, description = "No such cluster", body = ErrorBody),
        (status = 409, description = "An operation is running", body = ErrorBody)))]
pub async fn rollback(
    State(state): State<ApiState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let cluster_id = parse_id("cluster", &id)?;
    let txn = state.begin().await?;
    let result = patching::rollback_cluster(&txn, &state.ctx, ClusterRef { cluster_id }).await;
    let task = state
        .finish_audited(txn, &actor, "rollback_cluster", cluster(cluster_id), result)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(task)))
}

/// Nodes to add: a JSON array of nodes (as Nailgun takes them) or `{"nodes": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NodesBody {
    List(Vec<NewNode>),
    Wrapped { nodes: Vec<NewNode> },
}

#[utoipa::path(post, path = "/api/clusters/{id}/nodes/", tag = "clusters", params(("id" = i32, Path, description = "Cluster id")),
    request_body(content = Object, description = "A list of nodes, or {\"nodes\": [...]}"),
    responses((status = 201, description = "The nodes", body = Object),
        (status = 400, description = "Invalid nodes", body = ErrorBody),
        (status = 404, description = "No such cluster", body = ErrorBody),
        (status = 409, description = "An operation is running", body = ErrorBody)))]
pub async fn add_nodes(
    State(state): State<ApiState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let cluster_id = parse_id("cluster", &id)?;
    let nodes = match parse_body::<NodesBody>(&body)? {
        NodesBody::List(nodes) | NodesBody::Wrapped { nodes } => nodes,
    };
    let txn = state.begin().await?;
    let result = clusters::add_nodes(&txn, NewNodes { cluster_id, nodes }).await;
    let added = state
        .finish_audited(txn, &actor, "add_nodes", cluster(cluster_id), result)
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// The trail's targets of a request on one cluster.
fn cluster(cluster_id: i32) -> Targets {
    Targets {
        cluster_id: Some(cluster_id),
        ..Targets::default()
    }
}

#[utoipa::path(get, path = "/api/tasks/{uuid}/", tag = "tasks",
    params(("uuid" = String, Path, description = "Task uuid")),
    responses((status = 200, description = "The task", body = Object),
        (status = 404, description = "No such task", body = ErrorBody)))]
pub async fn task(
    State(state): State<ApiState>,
    Path(uuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(tasks::get_task(&state.db, &uuid).await?))
}
