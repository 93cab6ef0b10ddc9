//! Consumes requests from other services on `astute_bridge.requests` and answers each on its
//! `reply_to`. A request runs in one transaction together with its idempotency record and its
//! answer (queued in the outbox), and is acked after that commits. A request whose `message_id`
//! was already executed is answered again with the first result, and not executed again.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lapin::message::Delivery;
use lapin::Connection;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, TransactionTrait, TryInsertResult,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::settle::{ack, requeue};
use super::subscription::Subscription;
use super::AmqpError;
use crate::core::access;
use crate::core::audit::{Targets, Transport, ANONYMOUS};
use crate::core::refusal::Refusal;
use crate::service::audit;
use crate::service::dispatch::dispatch;
use crate::service::{Context, ServiceError};
use crate::store::entity::processed_request;
use crate::store::outbox::{self, MessageProperties, OutgoingMessage};
use crate::store::{self as db_store};
use crate::telemetry;
use crate::wire::request;

/// Largest request body accepted; larger ones are refused unread.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

pub async fn run(
    connection: &Connection,
    db: DatabaseConnection,
    ctx: Context,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> Result<(), AmqpError> {
    let names = ctx.amqp.clone();
    let timeout = names.timeout();
    let mut subscription = Subscription::open(
        connection,
        &names.request_queue,
        "requests",
        names.prefetch,
        timeout,
    )
    .await?;
    let ended = loop {
        tokio::select! {
            next = subscription.next() => match next {
                Ok(delivery) => handle(&db, &ctx, &wake, delivery, timeout).await?,
                Err(err) => break Err(err),
            },
            _ = shutdown.cancelled() => break Ok(()),
        }
    };
    subscription.cancel().await;
    subscription.close().await;
    ended
}

/// The request's routing facts.
struct Envelope {
    message_id: Option<String>,
    reply_to: Option<String>,
    correlation_id: Option<String>,
    /// The broker user who published it (RabbitMQ checks it against the connection's user).
    user_id: Option<String>,
}

async fn handle(
    db: &DatabaseConnection,
    ctx: &Context,
    wake: &Notify,
    delivery: Delivery,
    timeout: Duration,
) -> Result<(), AmqpError> {
    let envelope = Envelope {
        message_id: delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string()),
        reply_to: delivery
            .properties
            .reply_to()
            .as_ref()
            .map(|s| s.to_string()),
        correlation_id: delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|s| s.to_string()),
        user_id: delivery
            .properties
            .user_id()
            .as_ref()
            .map(|s| s.to_string()),
    };
    let parsed = if delivery.data.len() > MAX_REQUEST_BYTES {
        Err(Refusal::invalid_request(format!(
            "a request body may not exceed {MAX_REQUEST_BYTES} bytes"
        )))
    } else {
        request::parse(&delivery.data)
    };
    let method = parsed
        .as_ref()
        .map(|r| r.method.clone())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        method = %method,
        message_id = envelope.message_id.as_deref().unwrap_or(""),
        task_uuid = tracing::field::Empty,
        cluster_id = tracing::field::Empty
    );
    let outcome = execute(db, ctx, &envelope, parsed)
        .instrument(span.clone())
        .await;
    match outcome {
        Ok(refused) => {
            telemetry::request_handled(if refused { "refused" } else { "ok" });
            wake.notify_one();
            ack(&delivery, timeout).instrument(span.clone()).await?;
        }
        Err(err) => {
            telemetry::request_handled("requeued");
            span.in_scope(|| tracing::warn!(error = %err, "request not executed (database); it goes back to the queue"));
            tokio::time::sleep(Duration::from_millis(500)).await;
            requeue(&delivery, timeout).await?;
        }
    }
    Ok(())
}

/// Executes one request and queues its answer, all in one transaction; `true` if refused.
async fn execute(
    db: &DatabaseConnection,
    ctx: &Context,
    envelope: &Envelope,
    parsed: Result<request::Request, Refusal>,
) -> Result<bool, DbErr> {
    let txn = db_store::begin_write(db).await?;
    let method = parsed
        .as_ref()
        .map(|r| r.method.as_str())
        .unwrap_or("")
        .to_string();
    let denied = forbidden(ctx, envelope, &parsed);
    if let Some(message_id) = &envelope.message_id {
        if let Some(saved) = claim(&txn, message_id, &method).await? {
            // A sender who may not call this never gets another's first answer.
            let (saved, refused) = match &denied {
                Some(refusal) => {
                    tracing::info!(code = %refusal.code, reason = %refusal.message, "request refused");
                    (request::error_response(refusal), true)
                }
                None => {
                    tracing::info!("request already executed; answering with its first result");
                    (saved, false)
                }
            };
            answer(&txn, envelope, saved).await?;
            txn.commit().await?;
            return Ok(refused);
        }
    }
    // What was asked for, even if refused.
    let targets = parsed
        .as_ref()
        .map(|req| Targets::from_args(&req.args))
        .unwrap_or_default();
    let was_denied = denied.is_some();
    let parsed = match denied {
        Some(refusal) => Err(refusal),
        None => parsed,
    };
    let result = match parsed {
        Err(refusal) => Err(refusal),
        Ok(req) => {
            // A savepoint: a refused operation leaves nothing behind, but its answer and its
            // idempotency record still commit. An answer over the broker's limit refuses the
            // operation too (`message_too_large`), so that nothing changed when it is answered.
            let savepoint = txn.begin().await?;
            let outcome = dispatch(&savepoint, ctx, &req.method, req.args)
                .await
                .and_then(|answer| {
                    request::ok_response(&answer, ctx.amqp.max_message_bytes)
                        .map_err(ServiceError::from)
                });
            match outcome {
                Ok(response) => {
                    savepoint.commit().await?;
                    Ok(response)
                }
                Err(ServiceError::Refused(refusal)) => {
                    savepoint.rollback().await?;
                    Err(refusal)
                }
                Err(ServiceError::Database(err)) => return Err(err),
            }
        }
    };
    match &result {
        Ok(_) => tracing::info!("request executed"),
        Err(refusal) => {
            tracing::info!(code = %refusal.code, reason = %refusal.message, "request refused")
        }
    }
    // Every request that may change something is on the trail, refused or not, in this
    // transaction: it commits with the change (or the refusal's idempotency record).
    if was_denied || !access::is_read(&method) {
        let targets = match &result {
            Ok(response) if Targets::needs_answer(&method) => {
                targets.with_answer(&method, &answered_result(response))
            }
            _ => targets,
        };
        audit::record(
            &txn,
            audit::Entry {
                actor: envelope.user_id.as_deref().unwrap_or(ANONYMOUS),
                transport: Transport::Amqp,
                method: &method,
                targets,
                refusal: result.as_ref().err(),
            },
        )
        .await?;
    }
    let refused = result.is_err();
    let response = match result {
        Ok(response) => response,
        Err(refusal) => request::error_response(&refusal),
    };
    if let Some(message_id) = &envelope.message_id {
        processed_request::Entity::update_many()
            .col_expr(
                processed_request::Column::Response,
                Expr::value(response.clone()),
            )
            .filter(processed_request::Column::MessageId.eq(message_id.as_str()))
            .exec(&txn)
            .await?;
    }
    answer(&txn, envelope, response).await?;
    txn.commit().await?;
    Ok(refused)
}

/// The `result` of an `{"ok": true, "result": …}` answer, for the ids of what it made.
fn answered_result(response: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(response)
        .map(|mut answer| answer["result"].take())
        .unwrap_or_default()
}

/// `forbidden` when `[requests] allowed_users` is set and the sender may not call the method
/// (or, for a request that could not be read, is not listed at all).
fn forbidden(
    ctx: &Context,
    envelope: &Envelope,
    parsed: &Result<request::Request, Refusal>,
) -> Option<Refusal> {
    let users = ctx.allowed_users.as_ref()?;
    let user = envelope.user_id.as_deref();
    match parsed {
        Ok(req) => users.authorize(user, &req.method).err(),
        Err(_) => users.role_of(user).err(),
    }
}

/// Records `message_id` as executed. Returns the first answer if it already was. The record is
/// a primary key written in this transaction: a concurrent duplicate waits for it, then finds it.
async fn claim<C: ConnectionTrait>(
    db: &C,
    message_id: &str,
    method: &str,
) -> Result<Option<String>, DbErr> {
    let inserted = processed_request::Entity::insert(processed_request::ActiveModel {
        message_id: Set(message_id.to_string()),
        method: Set(method.chars().take(64).collect()),
        response: Set(None),
        created_at: Set(Utc::now()),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(db)
    .await?;
    if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
        return Ok(None);
    }
    let saved = processed_request::Entity::find_by_id(message_id.to_string())
        .one(db)
        .await?;
    let response = saved
        .and_then(|row| row.response)
        .filter(|text| serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok())
        .unwrap_or_else(|| {
            request::error_response(&Refusal::new(
                crate::core::refusal::ErrorCode::Internal,
                "the first execution left no answer",
            ))
        });
    Ok(Some(response))
}

/// Queues the answer for `reply_to`, if the caller asked for one.
async fn answer<C: ConnectionTrait>(
    db: &C,
    envelope: &Envelope,
    response: String,
) -> Result<(), DbErr> {
    let Some(reply_to) = &envelope.reply_to else {
        return Ok(());
    };
    outbox::enqueue(
        db,
        OutgoingMessage {
            exchange: String::new(),
            routing_key: reply_to.clone(),
            body: response,
            properties: MessageProperties {
                correlation_id: envelope.correlation_id.clone(),
                message_id: Some(uuid::Uuid::new_v4().to_string()),
            },
            mandatory: false,
            body_format: None,
        },
    )
    .await
}
