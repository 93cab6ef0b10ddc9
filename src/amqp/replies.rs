//! Consumes Astute's replies from `nailgun`. Replies of one task always go to the same lane and
//! are applied in order; lanes run concurrently. Each reply is applied in one transaction and
//! acked only after it commits; poison goes to the dead-letter queue with its reason.
//!
//! When the database refuses, `reply_retry::next_step` decides and the lane obeys: a transient
//! failure is retried here, then the reply is requeued (at most `MAX_REQUEUES` times, then
//! parked); a permanent one splits the batch to find the bad reply, which is parked with the
//! database's reason. A reply that is requeued holds back the later replies of its task until
//! it is back, so one task's replies are still applied in delivery order.

use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::message::Delivery;
use lapin::Connection;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::publisher::{with_header, Delivery as Fate, Publisher};
use super::reply_retry::{fingerprint, next_step, Holds, Requeues, Step};
use super::settle::{ack, requeue};
use super::subscription::Subscription;
use super::AmqpError;
use crate::service::replies::ReplyOutcome;
use crate::service::reply_batch::deploy_resp_batch;
use crate::service::Context;
use crate::store;
use crate::store::fault::fault_of;
use crate::telemetry;
use crate::wire::astute_reply;

/// Header that carries why a reply was dead-lettered.
pub const REASON_HEADER: &str = "x-bridge-reason";

/// Most replies applied in one transaction by one lane.
const MAX_BATCH: usize = 32;

/// Shared by the lanes.
struct Handler {
    db: DatabaseConnection,
    ctx: Context,
    wake: Arc<Notify>,
    dead_letters: Publisher,
    timeout: Duration,
    /// SQLite only: the lanes take turns to write. SQLite has one writer; lanes that raced for
    /// its lock would wait in its busy handler, which sleeps 1, 2, 5, 10… ms between tries,
    /// while a turn here is handed over the moment the previous commit ends.
    sqlite_turn: Option<tokio::sync::Mutex<()>>,
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
    let sqlite = db.get_database_backend() == sea_orm::DbBackend::Sqlite;
    let handler = Arc::new(Handler {
        dead_letters: Publisher::open(connection, timeout).await?,
        sqlite_turn: sqlite.then(|| tokio::sync::Mutex::new(())),
        db,
        ctx,
        wake,
        timeout,
    });
    let mut lanes = Vec::with_capacity(names.reply_workers);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..names.reply_workers {
        let (tx, mut rx) = mpsc::channel::<Delivery>(usize::from(names.prefetch));
        let handler = Arc::clone(&handler);
        lanes.push(tx);
        workers.spawn(async move {
            let mut memory = LaneMemory::default();
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
                handler.handle(batch, &mut memory).await?;
            }
            Ok::<(), AmqpError>(())
        });
    }
    tracing::debug!(lanes = names.reply_workers, "reply lanes started");

    // A lane that ends before shutdown (an error, a panic) ends the consumer at once, so the
    // supervisor sees it now rather than when a later reply happens to hash to that lane.
    let ended = loop {
        tokio::select! {
            next = subscription.next() => match next {
                Ok(delivery) => {
                    let lane = lane_of(&delivery.data, names.max_reply_bytes, lanes.len());
                    if lanes[lane].send(delivery).await.is_err() {
                        break Err(AmqpError::Topology("a reply lane stopped".into()));
                    }
                }
                Err(err) => break Err(err),
            },
            Some(lane) = workers.join_next() => break Err(lane_ended(lane)),
            _ = shutdown.cancelled() => break Ok(()),
        }
    };
    subscription.cancel().await;
    drop(lanes);
    let mut lanes_result = Ok(());
    while let Some(lane) = workers.join_next().await {
        let result = lane_result(lane);
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

/// A lane's end: its own error, or its panic.
fn lane_result(
    joined: Result<Result<(), AmqpError>, tokio::task::JoinError>,
) -> Result<(), AmqpError> {
    joined.unwrap_or_else(|join| {
        Err(AmqpError::Topology(format!(
            "a reply lane panicked: {join}"
        )))
    })
}

/// Why the consumer stops when a lane ended before shutdown.
fn lane_ended(joined: Result<Result<(), AmqpError>, tokio::task::JoinError>) -> AmqpError {
    match lane_result(joined) {
        Err(err) => AmqpError::Topology(format!("a reply lane stopped: {err}")),
        Ok(()) => AmqpError::Topology("a reply lane stopped".into()),
    }
}

/// The lane of a reply: by task uuid, so one task's replies stay in order. A reply over the
/// size limit is not read (its lane dead-letters it).
fn lane_of(body: &[u8], limit: usize, lanes: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    astute_reply::check_size(body, limit)
        .ok()
        .and_then(|()| astute_reply::peek_task_uuid(body))
        .hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

/// A parsed reply with its delivery, and the name its requeues are counted under.
struct Pending {
    delivery: Delivery,
    reply: astute_reply::AstuteReply,
    fingerprint: u64,
}

/// How an attempt to apply a group of replies ended.
enum Ended {
    /// Applied (or found unchanged) and acked.
    Settled,
    /// To be applied one by one, each starting at this attempt.
    Split(Vec<Pending>, u32),
    /// A single reply to hand back to the broker.
    Requeue(Pending, sea_orm::DbErr),
    /// A single reply to park in the dead-letter queue.
    Park(Pending, sea_orm::DbErr),
}

/// What a lane remembers between batches.
#[derive(Default)]
struct LaneMemory {
    requeues: Requeues,
    holds: Holds,
}

impl Handler {
    /// Applies a batch of replies in one transaction, then acks each (or dead-letters those
    /// naming no task). Poison is dead-lettered first. When the database refuses, `next_step`
    /// decides (retry here, split into single replies, requeue, park) and this loop obeys.
    async fn handle(&self, batch: Vec<Delivery>, memory: &mut LaneMemory) -> Result<(), AmqpError> {
        let mut replies = Vec::with_capacity(batch.len());
        for delivery in batch {
            match astute_reply::parse_within(&delivery.data, self.ctx.amqp.max_reply_bytes) {
                Ok(reply) => replies.push(Pending {
                    fingerprint: fingerprint(&delivery.data),
                    delivery,
                    reply,
                }),
                Err(poison) => self.park(delivery, &poison.0).await?,
            }
        }
        // One lock order for every bridge (by task uuid), so two bridges' batches never
        // deadlock; the sort is stable, so one task's replies keep their order.
        replies.sort_by(|a, b| a.reply.task_uuid.cmp(&b.reply.task_uuid));
        let mut admitted = Vec::with_capacity(replies.len());
        for pending in replies {
            if let Some(pending) = self.in_order(pending, memory).await? {
                admitted.push(pending);
            }
        }
        let mut work = VecDeque::from([(admitted, 1)]);
        while let Some((group, first_attempt)) = work.pop_front() {
            match self.apply_group(group, first_attempt, memory).await? {
                Ended::Settled => {}
                Ended::Split(group, start_at) => {
                    // One by one, in order, ahead of anything else.
                    for pending in group.into_iter().rev() {
                        work.push_front((vec![pending], start_at));
                    }
                }
                Ended::Park(pending, err) => {
                    let requeued = memory.requeues.of(pending.fingerprint);
                    memory.requeues.forget(pending.fingerprint);
                    let reason = format!(
                        "the database refused the reply (requeued {requeued} times): {err}"
                    );
                    self.park(pending.delivery, &reason).await?;
                }
                Ended::Requeue(pending, err) => {
                    tracing::warn!(task_uuid = %pending.reply.task_uuid, error = %err, "reply requeued");
                    memory.requeues.record(pending.fingerprint);
                    memory.holds.hold(
                        &pending.reply.task_uuid,
                        pending.fingerprint,
                        Instant::now(),
                    );
                    telemetry::reply_handled("requeued");
                    requeue(&pending.delivery, self.timeout).await?;
                    // The replies still to apply alone: those of its task now wait behind it.
                    for (queued, _) in work.iter_mut() {
                        let mut kept = Vec::with_capacity(queued.len());
                        for later in std::mem::take(queued) {
                            kept.extend(self.in_order(later, memory).await?);
                        }
                        *queued = kept;
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies a group of replies, retrying in place while `next_step` says so; says how it
    /// ended.
    async fn apply_group(
        &self,
        mut group: Vec<Pending>,
        first_attempt: u32,
        memory: &mut LaneMemory,
    ) -> Result<Ended, AmqpError> {
        if group.is_empty() {
            return Ok(Ended::Settled);
        }
        let mut attempt = first_attempt;
        loop {
            let err = match self.apply(&group).await {
                Ok(outcomes) => {
                    self.settle(group, outcomes, memory).await?;
                    return Ok(Ended::Settled);
                }
                Err(err) => err,
            };
            let fault = fault_of(self.db.get_database_backend(), &err);
            let requeues = match group.as_slice() {
                [single] => memory.requeues.of(single.fingerprint),
                _ => 0,
            };
            return Ok(match next_step(fault, group.len(), attempt, requeues) {
                Step::RetryAfter(pause) => {
                    tracing::warn!(attempt, replies = group.len(), ?fault, error = %err, "could not apply replies; retrying");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                    continue;
                }
                Step::Split { start_at } => {
                    tracing::warn!(replies = group.len(), ?fault, error = %err, "could not apply replies together; applying them one by one");
                    Ended::Split(group, start_at)
                }
                Step::Requeue => match group.pop() {
                    Some(single) => Ended::Requeue(single, err),
                    None => Ended::Settled,
                },
                Step::Park => match group.pop() {
                    Some(single) => Ended::Park(single, err),
                    None => Ended::Settled,
                },
            });
        }
    }

    /// The reply, unless an earlier reply of its task was requeued and has not come back: then
    /// it is requeued behind it, so the two are applied in delivery order.
    async fn in_order(
        &self,
        pending: Pending,
        memory: &mut LaneMemory,
    ) -> Result<Option<Pending>, AmqpError> {
        if memory.holds.admit(
            &pending.reply.task_uuid,
            pending.fingerprint,
            Instant::now(),
        ) {
            return Ok(Some(pending));
        }
        tracing::debug!(task_uuid = %pending.reply.task_uuid, "reply requeued behind an earlier one of its task");
        telemetry::reply_handled("requeued");
        requeue(&pending.delivery, self.timeout).await?;
        Ok(None)
    }

    /// Applies every reply in one transaction, with set-based statements for the whole batch;
    /// commits if any changed something.
    async fn apply(&self, replies: &[Pending]) -> Result<Vec<ReplyOutcome>, sea_orm::DbErr> {
        let _turn = match &self.sqlite_turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        };
        let txn = store::begin_write(&self.db).await?;
        let parsed: Vec<&astute_reply::AstuteReply> = replies.iter().map(|p| &p.reply).collect();
        let span = tracing::info_span!("deploy_resp", replies = parsed.len());
        let outcomes = deploy_resp_batch(&txn, &self.ctx, &parsed)
            .instrument(span)
            .await?;
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

    /// After the commit: ack what was applied or unchanged (reporting node entries that were
    /// set aside), dead-letter unknown tasks.
    async fn settle(
        &self,
        replies: Vec<Pending>,
        outcomes: Vec<ReplyOutcome>,
        memory: &mut LaneMemory,
    ) -> Result<(), AmqpError> {
        let mut applied = false;
        let mut to_ack = Vec::with_capacity(replies.len());
        for (pending, outcome) in replies.into_iter().zip(outcomes) {
            memory.requeues.forget(pending.fingerprint);
            let Pending {
                delivery, reply, ..
            } = pending;
            if outcome == ReplyOutcome::UnknownTask {
                let reason = format!("unknown task '{}'", reply.task_uuid);
                self.park(delivery, &reason).await?;
                continue;
            }
            if !reply.rejected.is_empty() {
                self.report_rejected(&delivery, &reply).await?;
            }
            match outcome {
                ReplyOutcome::Applied { .. } => {
                    applied = true;
                    telemetry::reply_handled("applied");
                }
                _ => telemetry::reply_handled("unchanged"),
            }
            to_ack.push(delivery);
        }
        // Sent together: the connection writes them in as few frames as it can, instead of
        // one wake-up and one write per reply.
        futures_util::future::try_join_all(to_ack.iter().map(|d| ack(d, self.timeout))).await?;
        if applied {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Puts a copy of a reply's unreadable node entries in the dead-letter queue with why; the
    /// rest of the reply was applied.
    async fn report_rejected(
        &self,
        delivery: &Delivery,
        reply: &astute_reply::AstuteReply,
    ) -> Result<(), AmqpError> {
        let reason = reply.rejection_reason();
        tracing::warn!(task_uuid = %reply.task_uuid, reason, "node entries of a reply set aside");
        telemetry::reply_handled("node_dead_lettered");
        if !self
            .publish_dead(delivery, &reply.rejected_body(), &reason)
            .await?
        {
            requeue(delivery, self.timeout).await?;
            return Err(self.dead_letter_queue_refused());
        }
        Ok(())
    }

    /// Moves a reply that can never be applied to the dead-letter queue, then acks it.
    async fn park(&self, delivery: Delivery, reason: &str) -> Result<(), AmqpError> {
        tracing::warn!(reason, queue = %self.ctx.amqp.dead_letter_queue, "reply dead-lettered");
        telemetry::reply_handled("dead_lettered");
        if !self.publish_dead(&delivery, &delivery.data, reason).await? {
            requeue(&delivery, self.timeout).await?;
            return Err(self.dead_letter_queue_refused());
        }
        ack(&delivery, self.timeout).await
    }

    /// Publishes `body` with the delivery's properties and `reason` to the dead-letter queue;
    /// whether the broker took it.
    async fn publish_dead(
        &self,
        delivery: &Delivery,
        body: &[u8],
        reason: &str,
    ) -> Result<bool, AmqpError> {
        let properties = with_header(delivery.properties.clone(), REASON_HEADER, reason);
        let fate = self
            .dead_letters
            .publish_one(
                "",
                &self.ctx.amqp.dead_letter_queue,
                body,
                properties.with_delivery_mode(2),
                true,
            )
            .await?;
        Ok(fate == Fate::Confirmed)
    }

    fn dead_letter_queue_refused(&self) -> AmqpError {
        AmqpError::Topology(format!(
            "the dead-letter queue '{}' did not take a message",
            self.ctx.amqp.dead_letter_queue
        ))
    }
}
