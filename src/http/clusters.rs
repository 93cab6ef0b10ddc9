//! `/api/clusters/` and `/api/tasks/`: clusters, their nodes, updates and rollbacks.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::{parse_body, parse_id, ApiError, ApiState};
use crate::core::audit::Targets;
use crate::service::clusters::{self, ClusterRef, NewNode, NewNodes};
use crate::service::{patching, tasks};

pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(clusters::list_clusters(&state.db).await?))
}

pub async fn show(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let cluster_id = parse_id("cluster", &id)?;
    Ok(Json(
        clusters::get_cluster(&state.db, ClusterRef { cluster_id }).await?,
    ))
}

pub async fn create(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = parse_body(&body)?;
    let txn = state.begin().await?;
    let result = clusters::create_cluster(&txn, new, &state.ctx.fuel_version).await;
    let created = state
        .finish_audited(txn, "create_cluster", Targets::default(), result)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `PUT /api/clusters/{id}/` with `{"pending_release_id": T}`.
pub async fn set_pending(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let cluster_id = parse_id("cluster", &id)?;
    let pending = parse_body(&body)?;
    let txn = state.begin().await?;
    let result = patching::set_pending_release(&txn, &state.ctx, cluster_id, pending).await;
    Ok(Json(
        state
            .finish_audited(txn, "set_pending_release", cluster(cluster_id), result)
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
pub async fn update(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(query): Query<UpdateQuery>,
) -> Result<Response, ApiError> {
    let cluster_id = parse_id("cluster", &id)?;
    let target = patching::pending_target(&state.db, cluster_id).await?;
    if query.dry_run {
        let verdict = patching::check_update(&state.db, &state.ctx, target).await?;
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
    let txn = state.begin().await?;
    let result = patching::update_cluster(&txn, &state.ctx, target).await;
    let task = state
        .finish_audited(txn, "update_cluster", cluster(cluster_id), result)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(task)).into_response())
}

pub async fn rollback(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let cluster_id = parse_id("cluster", &id)?;
    let txn = state.begin().await?;
    let result = patching::rollback_cluster(&txn, &state.ctx, ClusterRef { cluster_id }).await;
    let task = state
        .finish_audited(txn, "rollback_cluster", cluster(cluster_id), result)
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

pub async fn add_nodes(
    State(state): State<ApiState>,
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
        .finish_audited(txn, "add_nodes", cluster(cluster_id), result)
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

pub async fn task(
    State(state): State<ApiState>,
    Path(uuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(tasks::get_task(&state.db, &uuid).await?))
}
