//! The outbox: every message this service publishes is first written here, in the same
//! transaction as the change it reports, and published by the relay only after that commit.
//! A crash between commit and publish loses nothing (the row is still there); a crash between
//! publish and delete publishes the row again, so delivery is at-least-once.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::prelude::Json;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::entity::outbox;

/// The AMQP properties an outgoing message carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// A message to publish once the current transaction commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub exchange: String,
    pub routing_key: String,
    pub body: String,
    pub properties: MessageProperties,
    /// Unroutable messages are kept and retried when `true` (Astute's casts), dropped when
    /// `false` (answers to a caller that went away, notifications nobody listens to yet).
    pub mandatory: bool,
    /// `None`: `body` is the message; else how the relay renders it (see `entity::outbox`).
    pub body_format: Option<&'static str>,
}

/// Adds a message to the outbox, inside the caller's transaction.
pub async fn enqueue<C: ConnectionTrait>(db: &C, message: OutgoingMessage) -> Result<(), DbErr> {
    let properties = serde_json::to_value(&message.properties)
        .map_err(|e| DbErr::Custom(format!("outbox properties: {e}")))?;
    outbox::Entity::insert(outbox::ActiveModel {
        id: NotSet,
        exchange: Set(message.exchange),
        routing_key: Set(message.routing_key),
        body: Set(message.body),
        properties: Set(properties),
        mandatory: Set(message.mandatory),
        attempts: Set(0),
        created_at: Set(Utc::now()),
        failures: Set(0),
        last_error: Set(None),
        next_attempt_at: Set(None),
        parked_at: Set(None),
        body_format: Set(message.body_format.map(str::to_owned)),
        published_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Adds messages to the outbox with one insert, in order, inside the caller's transaction.
pub async fn enqueue_many<C: ConnectionTrait>(
    db: &C,
    messages: Vec<OutgoingMessage>,
) -> Result<(), DbErr> {
    if messages.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let mut rows = Vec::with_capacity(messages.len());
    for message in messages {
        let properties = serde_json::to_value(&message.properties)
            .map_err(|e| DbErr::Custom(format!("outbox properties: {e}")))?;
        rows.push(outbox::ActiveModel {
            id: NotSet,
            exchange: Set(message.exchange),
            routing_key: Set(message.routing_key),
            body: Set(message.body),
            properties: Set(properties),
            mandatory: Set(message.mandatory),
            attempts: Set(0),
            created_at: Set(now),
            failures: Set(0),
            last_error: Set(None),
            next_attempt_at: Set(None),
            parked_at: Set(None),
            body_format: Set(message.body_format.map(str::to_owned)),
            published_at: Set(None),
        });
    }
    outbox::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The oldest `limit` rows due for publishing (not parked, not pausing after a refusal). With
/// `skip_locked` (PostgreSQL, inside a transaction) the rows are locked so another bridge's
/// relay skips them.
pub async fn oldest<C: ConnectionTrait>(
    db: &C,
    limit: u64,
    skip_locked: bool,
) -> Result<Vec<outbox::Model>, DbErr> {
    let mut query = outbox::Entity::find()
        .filter(outbox::Column::PublishedAt.is_null())
        .filter(outbox::Column::ParkedAt.is_null())
        .filter(
            Condition::any()
                .add(outbox::Column::NextAttemptAt.is_null())
                .add(outbox::Column::NextAttemptAt.lte(Utc::now())),
        )
        .order_by_asc(outbox::Column::Id)
        .limit(limit);
    if skip_locked {
        query = query.lock_with_behavior(
            sea_orm::sea_query::LockType::Update,
            sea_orm::sea_query::LockBehavior::SkipLocked,
        );
    }
    query.all(db).await
}

/// Marks rows whose casts the broker confirmed and whose `cache` is still to be stored.
pub async fn mark_published<C: ConnectionTrait>(db: &C, ids: &[i32]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    outbox::Entity::update_many()
        .col_expr(outbox::Column::PublishedAt, Expr::value(Some(Utc::now())))
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// Rows published whose casts are not stored yet (a failure came between), oldest first.
pub async fn published<C: ConnectionTrait>(
    db: &C,
    limit: u64,
) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::PublishedAt.is_not_null())
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Removes published rows.
pub async fn remove<C: ConnectionTrait>(db: &C, ids: &[i32]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    outbox::Entity::delete_many()
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// Counts a failed attempt on rows that could not be routed.
pub async fn count_attempt<C: ConnectionTrait>(db: &C, ids: &[i32]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Attempts,
            sea_orm::sea_query::Expr::col(outbox::Column::Attempts)
                .add(sea_orm::sea_query::Expr::val(1)),
        )
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// Records that the broker refused a row: it pauses until `retry_at`, or is parked when
/// `retry_at` is `None`.
pub async fn record_refusal<C: ConnectionTrait>(
    db: &C,
    id: i32,
    failures: i32,
    reason: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    let parked_at = retry_at.is_none().then(Utc::now);
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Failures, Expr::value(failures))
        .col_expr(outbox::Column::LastError, Expr::value(reason))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(retry_at))
        .col_expr(outbox::Column::ParkedAt, Expr::value(parked_at))
        .filter(outbox::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Parked rows, oldest first (for `astute-bridge outbox list`).
pub async fn parked<C: ConnectionTrait>(db: &C, limit: u64) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::ParkedAt.is_not_null())
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Puts parked rows back in line, with their refusals forgotten; returns how many.
pub async fn unpark<C: ConnectionTrait>(db: &C, ids: &[i32]) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = outbox::Entity::update_many()
        .col_expr(outbox::Column::Failures, Expr::value(0))
        .col_expr(
            outbox::Column::NextAttemptAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::ParkedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .filter(outbox::Column::ParkedAt.is_not_null())
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// The message ids of the casts still waiting in the outbox (published or parked not yet).
pub async fn waiting_casts<C: ConnectionTrait>(
    db: &C,
    exchange: &str,
) -> Result<HashSet<String>, DbErr> {
    let rows: Vec<Json> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Properties)
        .filter(outbox::Column::Exchange.eq(exchange))
        .filter(outbox::Column::Mandatory.eq(true))
        .filter(outbox::Column::PublishedAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|p| p.get("message_id").and_then(|v| v.as_str()))
        .map(str::to_string)
        .collect())
}

/// How many messages wait to be published, parked ones included (for metrics).
pub async fn backlog<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    outbox::Entity::find()
        .filter(outbox::Column::PublishedAt.is_null())
        .count(db)
        .await
}

/// How many messages are parked (for metrics).
pub async fn parked_count<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    outbox::Entity::find()
        .filter(outbox::Column::ParkedAt.is_not_null())
        .count(db)
        .await
}
