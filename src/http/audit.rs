//! The audit trail over HTTP: `GET /api/audit/?cluster_id=&limit=`, and the commit of a
//! state-changing request together with its trail row.

use axum::extract::{Query, State};
use axum::Json;
use sea_orm::DatabaseTransaction;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiError, ApiState};
use crate::core::audit::{Targets, Transport, ANONYMOUS};
use crate::service::{audit, ServiceError, ServiceResult};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    cluster_id: Option<i32>,
    limit: Option<u64>,
}

/// `GET /api/audit/`: the newest rows first, of one cluster or all.
pub async fn list(
    State(state): State<ApiState>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        audit::list(&state.db, query.cluster_id, query.limit).await?,
    ))
}

impl ApiState {
    /// As `finish`, with the request on the audit trail: a change and its row commit together;
    /// a refusal rolls the change back and its row commits alone. `targets` are the ids the
    /// path named; what the change made is read from its result.
    pub async fn finish_audited(
        &self,
        txn: DatabaseTransaction,
        method: &str,
        targets: Targets,
        result: ServiceResult<Value>,
    ) -> Result<Value, ApiError> {
        // Callers are identified by the transport layer; until then every one is anonymous.
        let actor = ANONYMOUS;
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
