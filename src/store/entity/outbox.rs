//! `outbox`: AMQP messages to publish once the transaction that wrote them has committed.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub exchange: String,
    pub routing_key: String,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// AMQP properties: `content_type`, `correlation_id`, `message_id`, `headers`, ...
    #[sea_orm(column_type = "Json")]
    pub properties: Json,
    pub mandatory: bool,
    /// Rounds in which no queue took this mandatory message (it waits for one).
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    /// Times the broker refused the message (a channel error tied to it).
    pub failures: i32,
    /// The broker's words at the last refusal, or why it was set aside.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Not published again before this time.
    pub next_attempt_at: Option<DateTimeUtc>,
    /// Set aside: published again only when an operator retries it.
    pub parked_at: Option<DateTimeUtc>,
    /// `None`: `body` is the message. `deploy_plan` ([`DEPLOY_PLAN`]): `body` is a deploy plan,
    /// rendered into the cast when it is published.
    #[sea_orm(column_type = "Text", nullable)]
    pub body_format: Option<String>,
    /// A plan's cast confirmed by the broker, not yet stored in its task's `cache`: stored and
    /// removed by the relay, never published again.
    pub published_at: Option<DateTimeUtc>,
}

/// `body_format` of a row whose body is a `DeployPlan`.
pub const DEPLOY_PLAN: &str = "deploy_plan";

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
