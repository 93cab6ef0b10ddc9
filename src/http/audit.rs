//! The audit trail over HTTP: `GET /api/audit/?cluster_id=&limit=`, and the commit of a
//! state-changing request together with its trail row.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::Json;
use sea_orm::DatabaseTransaction;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiError, ApiState, Caller, ErrorBody};
use crate::core::audit::{Targets, Transport, ANONYMOUS};
use crate::service::{audit, ServiceError, ServiceResult};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    cluster_id: Option<i32>,
    before_id: Option<i32>,
    limit: Option<u64>,
}

/// Who the trail names for an HTTP request: the token's name, `anonymous` when no token is
/// configured (the front puts the caller in the request's extensions).
pub struct Actor(String);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Actor(parts.extensions.get::<Caller>().map_or_else(
            || ANONYMOUS.to_string(),
            |caller| caller.name.clone(),
        )))
    }
}

/// `GET /api/audit/`: the newest rows first, of one cluster or all.
#[utoipa::path(get, path = "/api/audit/", tag = "audit",
    params(("cluster_id" = Option<i32>, Query, description = "Only this cluster's"),
        ("before_id" = Option<i32>, Query, description = "Only rows older than this id (the last of the previous page)"),
        ("limit" = Option<u64>, Query, description = "At most this many rows (default 100, at most 1000)")),
    responses((status = 200, description = "Audit rows, newest first", body = Object),
        (status = 400, description = "Invalid query", body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query: {e}")))?;
    Ok(Json(
        audit::list(&state.db, query.cluster_id, query.before_id, query.limit).await?,
    ))
}

impl ApiState {
    /// As `finish`, with the request on the audit trail: a change and its row commit together;
    /// a refusal rolls the change back and its row commits alone. `targets` are the ids the
    /// path named; what the change made is read from its result.
    pub async fn finish_audited(
        &self,
        txn: DatabaseTransaction,
        actor: &Actor,
        method: &str,
        targets: Targets,
        result: ServiceResult<Value>,
    ) -> Result<Value, ApiError> {
        let actor = actor.0.as_str();
        match result {
            Ok(value) => {
                let entry = audit::Entry {
                    actor,
                    transport: Transport::Http,
                    method,
                    targets: targets.with_answer(method, &value),
                    refusal: None,
                };
                audit::record(&txn, entry)
                    .await
                    .map_err(ApiError::database)?;
                self.finish(txn, Ok(value)).await
            }
            Err(ServiceError::Refused(refusal)) => {
                let _ = txn.rollback().await;
                let txn = self.begin().await?;
                let entry = audit::Entry {
                    actor,
                    transport: Transport::Http,
                    method,
                    targets,
                    refusal: Some(&refusal),
                };
                audit::record(&txn, entry)
                    .await
                    .map_err(ApiError::database)?;
                txn.commit().await.map_err(ApiError::database)?;
                Err(ServiceError::Refused(refusal).into())
            }
            Err(err) => self.finish(txn, Err(err)).await,
        }
    }
}
