//! Consumes Astute's replies from `nailgun`. Replies of one task always go to the same lane and
//! are applied in order; lanes run concurrently. Each reply is applied in one transaction and
//! acked only after it commits; poison goes to the dead-letter queue with its reason.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::Connection;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::publisher::{with_header, Delivery as Fate, Publisher};
use super::settle::{ack, requeue};
use super::subscription::Subscription;
use super::AmqpError;
use crate::service::replies::{deploy_resp, ReplyOutcome};
use crate::service::Context;
use crate::store;
use crate::telemetry;
use crate::wire::astute_reply;

/// Header that carries why a reply was dead-lettered.
pub const REASON_HEADER: &str = "x-bridge-reason";

/// How often a reply is retried in place when the database fails, before it is requeued.
const DB_ATTEMPTS: u32 = 3;

/// Most replies applied in one transaction by one lane.
const MAX_BATCH: usize = 32;

/// Shared by the lanes.
struct Handler {
    db: DatabaseConnection,
    ctx: Context,
    wake: Arc<Notify>,
    dead_letters: Publisher,
    timeout: Duration,
}

/// Consumes until `shutdown`; returns when every lane has finished its in-flight replies.
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
        &names.nailgun_queue,
        "replies",
        names.prefetch,
        timeout,
    )
    .await?;
    let handler = Arc::new(Handler {
        dead_letters: Publisher::open(connection, timeout).await?,
        db,
        ctx,
        wake,
        timeout,
    });
    let mut lanes = Vec::with_capacity(names.reply_workers);
    let mut workers = Vec::with_capacity(names.reply_workers);
    for _ in 0..names.reply_workers {
        let (tx, mut rx) = mpsc::channel::<Delivery>(usize::from(names.prefetch));
        let handler = Arc::clone(&handler);
        lanes.push(tx);
        workers.push(tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Whatever else already waits in the lane joins this transaction: one commit
                // (one WAL flush) for the batch instead of one per reply.
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                handler.handle(batch).await?;
            }
            Ok::<(), AmqpError>(())
        }));
    }
    tracing::debug!(lanes = names.reply_workers, "reply lanes started");

    let ended = loop {
        tokio::select! {
            next = subscription.next() => match next {
                Ok(delivery) => {
                    let lane = lane_of(&delivery.data, lanes.len());
                    if lanes[lane].send(delivery).await.is_err() {
                        break Err(AmqpError::Topology("a reply lane stopped".into()));
                    }
                }
                Err(err) => break Err(err),
            },
            _ = shutdown.cancelled() => break Ok(()),
        }
    };
    subscription.cancel().await;
    drop(lanes);
    let mut lanes_result = Ok(());
    for worker in workers {
        let result = match worker.await {
            Ok(result) => result,
            Err(join) => Err(AmqpError::Topology(format!(
                "a reply lane panicked: {join}"
            ))),
        };
        if lanes_result.is_ok() {
            lanes_result = result;
        }
    }
    // Every lane has acked what it took: the channels can close cleanly now.
    subscription.close().await;
    if let Ok(handler) = Arc::try_unwrap(handler) {
        handler.dead_letters.close().await;
    }
    lanes_result?;
    ended
}

/// The lane of a reply: by task uuid, so one task's replies stay in order.
fn lane_of(body: &[u8], lanes: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    astute_reply::peek_task_uuid(body).hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

impl Handler {
    /// Applies a batch of replies in one transaction, then acks each (or dead-letters those
    /// naming no task). Poison is dead-lettered first. If the database fails, the batch is
    /// retried a few times, then handed back to the broker.
    async fn handle(&self, batch: Vec<Delivery>) -> Result<(), AmqpError> {
        let mut replies = Vec::with_capacity(batch.len());
        for delivery in batch {
            match astute_reply::parse(&delivery.data) {
                Ok(reply) => replies.push((delivery, reply)),
                Err(poison) => {
                    telemetry::reply_handled("dead_lettered");
                    self.dead_letter(delivery, &poison.0).await?;
                }
            }
        }
        if replies.is_empty() {
            return Ok(());
        }
        // One lock order for every bridge (by task uuid), so two bridges' batches never
        // deadlock; the sort is stable, so one task's replies keep their order.
        replies.sort_by(|a, b| a.1.task_uuid.cmp(&b.1.task_uuid));
        for attempt in 1..=DB_ATTEMPTS {
            match self.apply(&replies).await {
                Ok(outcomes) => return self.settle(replies, outcomes).await,
                Err(err) => {
                    tracing::warn!(attempt, replies = replies.len(), error = %err, "could not apply replies; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
        // Still failing: try each reply alone, so one reply the database refuses does not hold
        // back the others; what still fails goes back to the broker for later.
        for (delivery, reply) in replies {
            let single = vec![(delivery, reply)];
            match self.apply(&single).await {
                Ok(outcomes) => self.settle(single, outcomes).await?,
                Err(err) => {
                    tracing::warn!(task_uuid = %single[0].1.task_uuid, error = %err, "reply requeued");
                    telemetry::reply_handled("requeued");
                    requeue(&single[0].0, self.timeout).await?;
                }
            }
        }
        Ok(())
    }

    /// Applies every reply in one transaction; commits if any changed something.
    async fn apply(
        &self,
        replies: &[(Delivery, astute_reply::AstuteReply)],
    ) -> Result<Vec<ReplyOutcome>, sea_orm::DbErr> {
        let txn = store::begin_write(&self.db).await?;
        let mut outcomes = Vec::with_capacity(replies.len());
        for (_, reply) in replies {
            let span = tracing::info_span!(
                "deploy_resp",
                task_uuid = %reply.task_uuid,
                cluster_id = tracing::field::Empty
            );
            outcomes.push(deploy_resp(&txn, &self.ctx, reply).instrument(span).await?);
        }
        if outcomes
            .iter()
            .any(|o| matches!(o, ReplyOutcome::Applied { .. }))
        {
            txn.commit().await?;
        } else {
            txn.rollback().await?;
        }
        Ok(outcomes)
    }

    /// After the commit: ack what was applied or unchanged, dead-letter unknown tasks.
    async fn settle(
        &self,
        replies: Vec<(Delivery, astute_reply::AstuteReply)>,
        outcomes: Vec<ReplyOutcome>,
    ) -> Result<(), AmqpError> {
        let mut applied = false;
        for ((delivery, reply), outcome) in replies.into_iter().zip(outcomes) {
            match outcome {
                ReplyOutcome::UnknownTask => {
                    telemetry::reply_handled("dead_lettered");
                    let reason = format!("unknown task '{}'", reply.task_uuid);
                    self.dead_letter(delivery, &reason).await?;
                }
                ReplyOutcome::Applied { .. } => {
                    applied = true;
                    telemetry::reply_handled("applied");
                    ack(&delivery, self.timeout).await?;
                }
                ReplyOutcome::Unchanged => {
                    telemetry::reply_handled("unchanged");
                    ack(&delivery, self.timeout).await?;
                }
            }
        }
        if applied {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Moves a reply that can never be applied to the dead-letter queue, then acks it.
    async fn dead_letter(&self, delivery: Delivery, reason: &str) -> Result<(), AmqpError> {
        tracing::warn!(reason, queue = %self.ctx.amqp.dead_letter_queue, "reply dead-lettered");
        let properties = with_header(delivery.properties.clone(), REASON_HEADER, reason);
        let fate = self
            .dead_letters
            .publish_one(
                "",
                &self.ctx.amqp.dead_letter_queue,
                &delivery.data,
                properties.with_delivery_mode(2),
                true,
            )
            .await?;
        if fate != Fate::Confirmed {
            requeue(&delivery, self.timeout).await?;
            return Err(AmqpError::Topology(format!(
                "the dead-letter queue '{}' did not take a message",
                self.ctx.amqp.dead_letter_queue
            )));
        }
        ack(&delivery, self.timeout).await
    }
}
