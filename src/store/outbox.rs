//! The outbox: every message this service publishes is first written here, in the same
//! transaction as the change it reports, and published by the relay only after that commit.
//! A crash between commit and publish loses nothing (the row is still there); a crash between
//! publish and delete publishes the row again, so delivery is at-least-once.

use chrono::Utc;
use sea_orm::sea_query::ExprTrait;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
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
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The oldest `limit` rows. With `skip_locked` (PostgreSQL, inside a transaction) the rows are
/// locked so another bridge's relay skips them.
pub async fn oldest<C: ConnectionTrait>(
    db: &C,
    limit: u64,
    skip_locked: bool,
) -> Result<Vec<outbox::Model>, DbErr> {
    let mut query = outbox::Entity::find()
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

/// How many messages wait to be published (for readiness and metrics).
pub async fn backlog<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    outbox::Entity::find().count(db).await
}
