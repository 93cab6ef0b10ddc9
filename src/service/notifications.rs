//! Notifications: stored, and queued in the outbox for the operators' exchange.

use chrono::Utc;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Deserialize;
use serde_json::Value;

use super::page::page_limit;
use super::{check_text, to_json, Context, ServiceResult};
use crate::core::enums::{NotificationStatus, NotificationTopic};
use crate::core::refusal::Refusal;
use crate::store::entity::{cluster, node, notification, task};
use crate::store::outbox::{self, MessageProperties, OutgoingMessage};
use crate::wire::notification_envelope::{self, NotificationPayload};

/// Longest notification message.
const MAX_MESSAGE: usize = 65_536;
/// Notifications a page holds when no limit is given.
pub const DEFAULT_PAGE: u64 = 1000;

/// `add_notification` args.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    pub topic: NotificationTopic,
    pub message: String,
    #[serde(default)]
    pub cluster_id: Option<i32>,
    #[serde(default)]
    pub node_id: Option<i32>,
    #[serde(default)]
    pub task_id: Option<i32>,
}

/// `list_notifications` args.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationFilter {
    #[serde(default)]
    pub cluster_id: Option<i32>,
    #[serde(default)]
    pub status: Option<NotificationStatus>,
    /// Only those older than this one: the last id of the previous page.
    #[serde(default)]
    pub before_id: Option<i32>,
    /// At most this many (1 to 1000, default 1000).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Stores a notification and queues its envelope; both commit with the caller's transaction.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    new: NewNotification,
) -> Result<notification::Model, DbErr> {
    let model = notification::Entity::insert(notification::ActiveModel {
        id: NotSet,
        cluster_id: Set(new.cluster_id),
        node_id: Set(new.node_id),
        task_id: Set(new.task_id),
        topic: Set(new.topic.as_str().into()),
        message: Set(new.message),
        status: Set(NotificationStatus::Unread.as_str().into()),
        datetime: Set(Utc::now()),
    })
    .exec_with_returning(db)
    .await?;
    let message_id = uuid::Uuid::new_v4().to_string();
    let payload = NotificationPayload {
        id: model.id,
        topic: new.topic,
        message: model.message.clone(),
        cluster_id: model.cluster_id,
        node_id: model.node_id,
        task_id: model.task_id,
        status: model.status.clone(),
        datetime: model.datetime,
    };
    let body = notification_envelope::envelope(&ctx.publisher_id, &message_id, &payload);
    outbox::enqueue(
        db,
        OutgoingMessage {
            exchange: ctx.amqp.notifications_exchange.clone(),
            routing_key: notification_envelope::routing_key(new.topic),
            body: body.to_string(),
            properties: MessageProperties {
                correlation_id: None,
                message_id: Some(message_id),
            },
            mandatory: false,
            body_format: None,
        },
    )
    .await?;
    Ok(model)
}

/// Stores notifications and queues their envelopes with one insert each for all of them (in
/// order); both commit with the caller's transaction.
pub async fn record_many<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    new: Vec<NewNotification>,
) -> Result<(), DbErr> {
    if new.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let rows = new.into_iter().map(|n| notification::ActiveModel {
        id: NotSet,
        cluster_id: Set(n.cluster_id),
        node_id: Set(n.node_id),
        task_id: Set(n.task_id),
        topic: Set(n.topic.as_str().into()),
        message: Set(n.message),
        status: Set(NotificationStatus::Unread.as_str().into()),
        datetime: Set(now),
    });
    let mut models = notification::Entity::insert_many(rows)
        .exec_with_returning(db)
        .await?;
    // Ids follow the insert's order; the outbox keeps it.
    models.sort_by_key(|m| m.id);
    let mut messages = Vec::with_capacity(models.len());
    for model in models {
        let Some(topic) = NotificationTopic::parse(&model.topic) else {
            continue;
        };
        let message_id = uuid::Uuid::new_v4().to_string();
        let payload = NotificationPayload {
            id: model.id,
            topic,
            message: model.message,
            cluster_id: model.cluster_id,
            node_id: model.node_id,
            task_id: model.task_id,
            status: model.status,
            datetime: model.datetime,
        };
        let body = notification_envelope::envelope(&ctx.publisher_id, &message_id, &payload);
        messages.push(OutgoingMessage {
            exchange: ctx.amqp.notifications_exchange.clone(),
            routing_key: notification_envelope::routing_key(topic),
            body: body.to_string(),
            properties: MessageProperties {
                correlation_id: None,
                message_id: Some(message_id),
            },
            mandatory: false,
            body_format: None,
        });
    }
    outbox::enqueue_many(db, messages).await
}

pub async fn add_notification<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    new: NewNotification,
) -> ServiceResult<Value> {
    check_text("message", &new.message, MAX_MESSAGE)?;
    if let Some(id) = new.cluster_id {
        if cluster::Entity::find_by_id(id).one(db).await?.is_none() {
            return Err(Refusal::not_found(format!("cluster {id} does not exist")).into());
        }
    }
    if let Some(id) = new.node_id {
        if node::Entity::find_by_id(id).one(db).await?.is_none() {
            return Err(Refusal::not_found(format!("node {id} does not exist")).into());
        }
    }
    if let Some(id) = new.task_id {
        if task::Entity::find_by_id(id).one(db).await?.is_none() {
            return Err(Refusal::not_found(format!("task {id} does not exist")).into());
        }
    }
    let model = record(db, ctx, new).await?;
    Ok(to_json(&model))
}

pub async fn list_notifications<C: ConnectionTrait>(
    db: &C,
    filter: NotificationFilter,
) -> ServiceResult<Value> {
    let limit = page_limit(filter.limit, DEFAULT_PAGE)?;
    let mut query = notification::Entity::find();
    if let Some(before_id) = filter.before_id {
        query = query.filter(notification::Column::Id.lt(before_id));
    }
    if let Some(cluster_id) = filter.cluster_id {
        query = query.filter(notification::Column::ClusterId.eq(cluster_id));
    }
    if let Some(status) = filter.status {
        query = query.filter(notification::Column::Status.eq(status.as_str()));
    }
    let rows = query
        .order_by_desc(notification::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok(to_json(&rows))
}

/// `PUT /api/notifications/{id}/` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationMark {
    pub status: NotificationStatus,
}

/// Marks a notification read or unread.
pub async fn mark_notification<C: ConnectionTrait>(
    db: &C,
    id: i32,
    mark: NotificationMark,
) -> ServiceResult<Value> {
    let found = notification::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Refusal::not_found(format!("notification {id} does not exist")))?;
    let mut active: notification::ActiveModel = found.into();
    active.status = Set(mark.status.as_str().into());
    let updated = notification::Entity::update(active).exec(db).await?;
    Ok(to_json(&updated))
}
