//! The audit trail: one row per state-changing request (and per refusal of one), written in the
//! caller's transaction so that it commits exactly when the change does; listed newest first.

use chrono::Utc;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use super::page::page_limit;
use super::{to_json, ServiceResult};
use crate::core::audit::{Targets, Transport};
use crate::core::refusal::Refusal;
use crate::store::entity::audit;

/// Rows a listing returns when no limit is given.
pub const DEFAULT_LIMIT: u64 = 100;

/// One request as the trail records it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub actor: &'a str,
    pub transport: Transport,
    pub method: &'a str,
    pub targets: Targets,
    /// `None`: done (`ok`); else the refusal.
    pub refusal: Option<&'a Refusal>,
}

/// Writes `entry` in the caller's transaction.
pub async fn record<C: ConnectionTrait>(db: &C, entry: Entry<'_>) -> Result<(), DbErr> {
    let method = match entry.method {
        "" => "(unreadable)",
        method => method,
    };
    audit::Entity::insert(audit::ActiveModel {
        id: NotSet,
        at: Set(Utc::now()),
        // Bounded as the columns are: a user_id is up to 255 bytes, a method name anything.
        actor: Set(entry.actor.chars().take(255).collect()),
        transport: Set(entry.transport.as_str().into()),
        method: Set(method.chars().take(64).collect()),
        cluster_id: Set(entry.targets.cluster_id),
        release_id: Set(entry.targets.release_id),
        node_ids: Set(entry.targets.node_ids_text()),
        outcome: Set(entry
            .refusal
            .map_or("ok", |refusal| refusal.code.as_str())
            .into()),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The newest `limit` rows (default 100, at most 1000) older than `before_id`, of one cluster
/// or all.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    cluster_id: Option<i32>,
    before_id: Option<i32>,
    limit: Option<u64>,
) -> ServiceResult<Value> {
    let limit = page_limit(limit, DEFAULT_LIMIT)?;
    let mut query = audit::Entity::find();
    if let Some(cluster_id) = cluster_id {
        query = query.filter(audit::Column::ClusterId.eq(cluster_id));
    }
    if let Some(before_id) = before_id {
        query = query.filter(audit::Column::Id.lt(before_id));
    }
    let rows = query
        .order_by_desc(audit::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok(Value::Array(rows.iter().map(describe).collect()))
}

fn describe(row: &audit::Model) -> Value {
    let mut value = to_json(row);
    // The column holds a JSON array; show it as one.
    value["node_ids"] = row
        .node_ids
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Array(Vec::new()));
    value
}
