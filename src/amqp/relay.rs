//! The outbox relay: publishes committed outbox rows with confirms, then deletes them. A commit
//! that queued messages wakes it at once; a timer catches rows left by a crash or another bridge.
//!
//! On PostgreSQL a round runs in one transaction that locks its rows `FOR UPDATE SKIP LOCKED`,
//! so several bridges relay the same table without publishing a row twice at once. SQLite has
//! one bridge and no row locks: the rows are read, published, then deleted.
//!
//! A deploy cast waits in the outbox as its plan (`body_format` `deploy_plan`): the relay renders
//! the cast just before publishing it (a large one off the async threads). Once the broker has
//! confirmed it, the round's transaction marks the row published (quick: the window in which a
//! failure publishes a message twice stays as short as for any row); then the cast is stored in
//! the task's `cache` and the row removed. A row left marked published by a failure between the
//! two is stored later from its plan, never published again.
//!
//! A message the broker refuses never blocks the rest. When the broker closes the channel over
//! a batch (an exchange deleted, a message over its size limit), the relay opens a new channel,
//! declares the topology again, and publishes the failed rows one at a time: those that go out
//! go out, and the one the broker refuses again is paused with a growing pause, then parked
//! with its reason after `outbox.max_attempts` refusals. A message over
//! `amqp.max_message_bytes`, or a plan that cannot be read, is parked at once. A parked cast
//! fails its task, as an `error` reply would, so the environment can be rolled back or updated
//! again.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lapin::Connection;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, TransactionTrait};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::publisher::{Delivery, Publisher};
use super::{topology, within, AmqpError};
use crate::config::OutboxSettings;
use crate::core::deploy_message::{deploy_message_from_stored, CastError};
use crate::service::replies::{casts_delivered, fail_running_task};
use crate::service::Context;
use crate::store::{self, entity::outbox as row, outbox, task_cache};
use crate::telemetry;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub published: usize,
    pub unroutable: usize,
    pub failed: usize,
    /// Rows the broker refused this round (paused or parked).
    pub refused: usize,
}

/// Longest pause between two attempts at a refused message.
const LONGEST_PAUSE: Duration = Duration::from_secs(60);

/// The fate of each row of a round, to write down.
#[derive(Default)]
struct Fates {
    round: Round,
    /// Published (or unroutable and not mandatory): deleted.
    done: Vec<i32>,
    /// Casts among `done`: their tasks' silence starts now.
    delivered_casts: Vec<String>,
    /// Casts confirmed and rendered from their plans: (row, task uuid, cast). Their rows are
    /// marked published with the round, then the casts stored in their tasks' `cache` and the
    /// rows removed.
    rendered_casts: Vec<(i32, String, String)>,
    /// Mandatory and unroutable: kept, and retried.
    unroutable: Vec<i32>,
    /// Refused by the broker, too large, or unreadable.
    refused: Vec<Refused>,
}

/// A row that did not go out, and why.
struct Refused {
    row: row::Model,
    reason: String,
    /// Refused for good (too large, or a plan that cannot be read): parked without retries.
    at_once: bool,
}

impl Refused {
    fn by_broker(row: row::Model, reason: String) -> Self {
        Refused {
            row,
            reason,
            at_once: false,
        }
    }
}

pub struct Relay {
    db: DatabaseConnection,
    connection: Arc<Connection>,
    publisher: Publisher,
    ctx: Context,
    settings: OutboxSettings,
    wake: Arc<Notify>,
    /// Rows may be marked published with their casts not stored yet (a failure came between, in
    /// this bridge or in one that stopped): looked for at the next round.
    stores_pending: bool,
}

impl Relay {
    /// Opens the relay's channel on `connection`.
    pub async fn open(
        db: DatabaseConnection,
        connection: Arc<Connection>,
        ctx: Context,
        settings: OutboxSettings,
        wake: Arc<Notify>,
    ) -> Result<Self, AmqpError> {
        let publisher = Publisher::open(&connection, ctx.amqp.timeout()).await?;
        Ok(Relay {
            db,
            connection,
            publisher,
            ctx,
            settings,
            wake,
            stores_pending: true,
        })
    }

    /// Relays until `shutdown`, then flushes what is left and returns.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), AmqpError> {
        let batch = self.settings.batch_size as usize;
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        loop {
            match self.round().await {
                // A full batch went out: there is probably more.
                Ok(round) if round.published + round.refused == batch => continue,
                Ok(_) => {}
                // The rows stay in the outbox; the next round tries again. Only a broker
                // failure stops the relay (and restarts the bridge).
                Err(AmqpError::Database(err)) => {
                    tracing::warn!(error = %err, "outbox relay could not reach the database; retrying")
                }
                Err(err) => return Err(err),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Whatever committed before the consumers stopped goes out before we exit.
        loop {
            let round = self.round().await?;
            if round.published + round.refused < batch {
                break;
            }
        }
        self.publisher.close().await;
        Ok(())
    }

    /// Publishes one batch.
    pub async fn round(&mut self) -> Result<Round, AmqpError> {
        let limit = self.settings.batch_size;
        if self.stores_pending {
            self.store_published(limit).await?;
            self.stores_pending = false;
        }
        let fates = if self.db.get_database_backend() == DbBackend::Postgres {
            let txn = self.db.begin().await?;
            let rows = outbox::oldest(&txn, limit, true).await?;
            let fates = self.publish(rows).await?;
            self.write_down(&txn, &fates).await?;
            txn.commit().await?;
            fates
        } else {
            let rows = outbox::oldest(&self.db, limit, false).await?;
            if rows.is_empty() {
                return Ok(Round::default());
            }
            let fates = self.publish(rows).await?;
            let txn = store::begin_write(&self.db).await?;
            self.write_down(&txn, &fates).await?;
            txn.commit().await?;
            fates
        };
        let round = fates.round;
        self.store_casts(fates.rendered_casts).await?;
        Ok(round)
    }

    /// Stores confirmed casts in their tasks' `cache`, one at a time, each row removed once its
    /// cast is stored. A failure leaves the rest marked published, for the next round.
    async fn store_casts(&mut self, casts: Vec<(i32, String, String)>) -> Result<(), AmqpError> {
        for (id, task_uuid, cast) in casts {
            let stored = task_cache::store(&self.db, &task_uuid, cast).await;
            let removed = match stored {
                Ok(()) => outbox::remove(&self.db, &[id]).await,
                Err(err) => Err(err),
            };
            if let Err(err) = removed {
                self.stores_pending = true;
                return Err(err.into());
            }
        }
        Ok(())
    }

    /// Stores the casts of rows marked published and not stored yet, rendered again from their
    /// plans: they went out already and are not published again.
    async fn store_published(&mut self, limit: u64) -> Result<(), AmqpError> {
        loop {
            let rows = outbox::published(&self.db, limit).await?;
            let done = rows.len() < limit as usize;
            let mut casts = Vec::with_capacity(rows.len());
            for row in rows {
                let id = row.id;
                let task_uuid = message_id_of(&row).to_string();
                match prepare(row, usize::MAX).await {
                    Ok((row, _)) => casts.push((id, task_uuid, row.body)),
                    // Confirmed by the broker, so once readable: nothing left to store.
                    Err(refused) => {
                        tracing::warn!(message_id = task_uuid, reason = refused.reason, "a published cast could not be rendered again for its task's cache; the row is removed");
                        outbox::remove(&self.db, &[id]).await?;
                    }
                }
            }
            self.store_casts(casts).await?;
            if done {
                return Ok(());
            }
        }
    }

    /// Deletes what went out, counts what waits for a queue, pauses or parks what the broker
    /// refused (failing the task of a parked cast).
    async fn write_down<C: ConnectionTrait>(
        &self,
        txn: &C,
        fates: &Fates,
    ) -> Result<(), AmqpError> {
        outbox::remove(txn, &fates.done).await?;
        let published: Vec<i32> = fates.rendered_casts.iter().map(|(id, _, _)| *id).collect();
        outbox::mark_published(txn, &published).await?;
        outbox::count_attempt(txn, &fates.unroutable).await?;
        casts_delivered(txn, &fates.delivered_casts).await?;
        for Refused {
            row,
            reason,
            at_once,
        } in &fates.refused
        {
            let failures = row.failures + 1;
            let parked = failures >= self.settings.max_attempts as i32 || *at_once;
            let retry_at = (!parked).then(|| Utc::now() + pause_after(failures));
            outbox::record_refusal(txn, row.id, failures, reason, retry_at).await?;
            let message_id = message_id_of(row);
            if !parked {
                tracing::warn!(message_id, exchange = %row.exchange, routing_key = %row.routing_key, failures, reason, "the broker refused a message; it is retried later");
                continue;
            }
            tracing::error!(message_id, exchange = %row.exchange, routing_key = %row.routing_key, failures, reason, "message set aside (parked): see `astute-bridge outbox list`");
            telemetry::outbox_parked();
            if self.is_cast(row) {
                let why =
                    format!("Its deploy cast could not be published and was set aside: {reason}");
                fail_running_task(txn, &self.ctx, message_id, &why).await?;
            }
        }
        Ok(())
    }

    fn is_cast(&self, row: &row::Model) -> bool {
        row.mandatory && row.exchange == self.ctx.amqp.naily_exchange
    }

    /// Publishes rows and says what became of each.
    async fn publish(&mut self, rows: Vec<row::Model>) -> Result<Fates, AmqpError> {
        let mut fates = Fates::default();
        let limit = self.ctx.amqp.max_message_bytes;
        let mut ready = Vec::with_capacity(rows.len());
        for row in rows {
            match prepare(row, limit).await {
                Ok(prepared) => ready.push(prepared),
                Err(refused) => fates.refused.push(refused),
            }
        }
        let (rows, rendered): (Vec<row::Model>, Vec<bool>) = ready.into_iter().unzip();
        if rows.is_empty() {
            fates.round.refused = fates.refused.len();
            return Ok(fates);
        }
        let mut delivered = self.publisher.publish_rows(&rows).await?;
        if delivered.contains(&Delivery::Failed) && !self.publisher.is_open() {
            // The broker closed the channel over one of them: find which, alone.
            self.reopen().await?;
            for (row, fate) in rows.iter().zip(delivered.iter_mut()) {
                if *fate != Delivery::Failed {
                    continue;
                }
                match self.publisher.publish_row(row).await {
                    Ok(alone) => *fate = alone,
                    Err(AmqpError::Broker(err)) if self.connection.status().connected() => {
                        fates
                            .refused
                            .push(Refused::by_broker(row.clone(), err.to_string()));
                        *fate = Delivery::Refused;
                        self.reopen().await?;
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        for ((row, rendered), fate) in rows.into_iter().zip(rendered).zip(delivered) {
            match fate {
                Delivery::Confirmed => {
                    fates.round.published += 1;
                    if self.is_cast(&row) {
                        let task_uuid = message_id_of(&row).to_string();
                        fates.delivered_casts.push(task_uuid.clone());
                        if rendered {
                            fates.rendered_casts.push((row.id, task_uuid, row.body));
                            continue;
                        }
                    }
                    fates.done.push(row.id);
                }
                Delivery::Unroutable if !row.mandatory => {
                    fates.round.published += 1;
                    fates.done.push(row.id);
                }
                Delivery::Unroutable => {
                    fates.round.unroutable += 1;
                    fates.unroutable.push(row.id);
                    // Said at attempts 1, 2, 4, 8…: visible, without a line every round.
                    if (row.attempts.unsigned_abs() + 1).is_power_of_two() {
                        tracing::warn!(
                            message_id = message_id_of(&row),
                            exchange = %row.exchange,
                            routing_key = %row.routing_key,
                            attempts = row.attempts + 1,
                            "no queue is bound for this message; it stays in the outbox and is retried"
                        );
                    }
                }
                Delivery::Failed => fates.round.failed += 1,
                Delivery::Refused => {}
            }
        }
        fates.round.refused = fates.refused.len();
        telemetry::published(fates.round.published);
        Ok(fates)
    }

    /// A new channel after the broker closed ours, with the topology declared again (an
    /// exchange deleted under the bridge comes back here). Fails only when the connection is
    /// gone, which the supervisor handles by starting the bridge again.
    async fn reopen(&mut self) -> Result<(), AmqpError> {
        let timeout = self.ctx.amqp.timeout();
        let channel = within(timeout, "channel.open", self.connection.create_channel()).await?;
        match topology::declare(&channel, &self.ctx.amqp).await {
            Ok(()) => {
                let _ = within(
                    timeout,
                    "channel.close",
                    channel.close(200, "declared".into()),
                )
                .await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "the relay could not declare the topology again")
            }
        }
        self.publisher = Publisher::open(&self.connection, timeout).await?;
        Ok(())
    }
}

/// Plans up to this size (about 30 nodes, a cast of a few hundred KB rendered in well under a
/// millisecond) are rendered on the relay's own thread: handing them to a blocking thread would
/// cost more than the work.
const RENDER_INLINE_BYTES: usize = 4096;

/// A row ready to publish, its body rendered when it is a deploy plan (`true` then), or why it
/// cannot go out. Rendering a large cast takes tens of ms of CPU: it runs off the async threads.
async fn prepare(mut row: row::Model, limit: usize) -> Result<(row::Model, bool), Refused> {
    match row.body_format.as_deref() {
        None if row.body.len() <= limit => Ok((row, false)),
        None => {
            let reason = too_large_reason(row.body.len(), limit);
            Err(Refused {
                row,
                reason,
                at_once: true,
            })
        }
        Some(row::DEPLOY_PLAN) => {
            let rendered = if row.body.len() <= RENDER_INLINE_BYTES {
                render_plan(&row.body, limit)
            } else {
                // The plan is small next to its cast: a copy goes to the blocking thread.
                let plan = row.body.clone();
                tokio::task::spawn_blocking(move || render_plan(&plan, limit))
                    .await
                    // A bug, not the row's fault alone: parked with the panic's words rather
                    // than taking the relay down at every attempt.
                    .unwrap_or_else(|err| {
                        Err(format!("the deploy cast could not be rendered: {err}"))
                    })
            };
            match rendered {
                Ok(cast) => {
                    row.body = cast;
                    Ok((row, true))
                }
                Err(reason) => Err(Refused {
                    row,
                    reason,
                    at_once: true,
                }),
            }
        }
        Some(other) => {
            let reason = format!("the row's body format '{other}' is unknown to this bridge");
            Err(Refused {
                row,
                reason,
                at_once: true,
            })
        }
    }
}

/// The cast a stored plan renders, within `limit` bytes, or why not.
fn render_plan(plan: &str, limit: usize) -> Result<String, String> {
    deploy_message_from_stored(plan, limit).map_err(|err| match err {
        CastError::TooLarge { size, limit } => too_large_reason(size, limit),
        other => other.to_string(),
    })
}

/// The pause after the `failures`-th refusal: 1 s, 2 s, 4 s … up to a minute.
fn pause_after(failures: i32) -> chrono::Duration {
    let exponent = failures.clamp(1, 16) as u32 - 1;
    let pause = Duration::from_secs(1u64 << exponent).min(LONGEST_PAUSE);
    chrono::Duration::from_std(pause).unwrap_or(chrono::Duration::MAX)
}

const TOO_LARGE: &str = "over amqp.max_message_bytes";

fn too_large_reason(size: usize, limit: usize) -> String {
    format!("the message is {size} bytes, {TOO_LARGE} ({limit} bytes)")
}

fn message_id_of(row: &row::Model) -> &str {
    row.properties
        .get("message_id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_minute() {
        let secs: Vec<i64> = (1..=8).map(|f| pause_after(f).num_seconds()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(pause_after(0).num_seconds(), 1);
        assert_eq!(pause_after(i32::MAX).num_seconds(), 60);
    }

    fn row(body: &str, body_format: Option<&str>) -> row::Model {
        row::Model {
            id: 1,
            exchange: "naily".into(),
            routing_key: "naily".into(),
            body: body.into(),
            properties: serde_json::json!({"message_id": "t"}),
            mandatory: true,
            attempts: 0,
            created_at: Utc::now(),
            failures: 0,
            last_error: None,
            next_attempt_at: None,
            parked_at: None,
            body_format: body_format.map(str::to_owned),
            published_at: None,
        }
    }

    #[tokio::test]
    async fn a_message_over_the_limit_is_parked_at_once() {
        let refused = prepare(row("0123456789x", None), 10).await.err().unwrap();
        assert_eq!(
            refused.reason,
            "the message is 11 bytes, over amqp.max_message_bytes (10 bytes)"
        );
        assert!(refused.at_once);
        assert_eq!(refused.row.body, "0123456789x");
        let (ready, rendered) = prepare(row("0123456789", None), 10).await.ok().unwrap();
        assert_eq!((ready.body.as_str(), rendered), ("0123456789", false));
    }

    /// A plan of `nodes` nodes, as the outbox stores it.
    fn stored_plan(nodes: i32) -> String {
        use crate::core::deploy_message::{ClusterFacts, DeployPlan, NodeFacts, ReleaseFacts};
        use crate::core::enums::{ClusterMode, OperatingSystem};
        let plan = DeployPlan {
            task_uuid: "t".into(),
            cluster: ClusterFacts {
                id: 1,
                mode: ClusterMode::HaCompact,
                fuel_version: "5.1".into(),
                attributes: serde_json::Map::new(),
            },
            deployed: ReleaseFacts {
                version: "2014.1.1-5.1".into(),
                operating_system: OperatingSystem::Ubuntu,
                repo_metadata: serde_json::json!({"nailgun": "http://10.20.0.2:8080/ubuntu"}),
                puppet_modules_source: "rsync://10.20.0.2:/puppet/modules/".into(),
                puppet_manifests_source: "rsync://10.20.0.2:/puppet/manifests/".into(),
            },
            previous_version: "2014.1-5.0".into(),
            nodes: (1..=nodes)
                .map(|id| NodeFacts {
                    id,
                    name: format!("node-{id}"),
                    fqdn: format!("node-{id}.domain.tld"),
                    roles: vec![if id <= 3 { "controller" } else { "compute" }.into()],
                    online: true,
                })
                .collect(),
        };
        serde_json::to_string(&plan).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plans_small_and_large_render_their_casts() {
        for nodes in [2, 200] {
            let plan = stored_plan(nodes);
            // Both sides of the inline threshold.
            assert_eq!(plan.len() > RENDER_INLINE_BYTES, nodes == 200);
            let expected = deploy_message_from_stored(&plan, usize::MAX).unwrap();
            let (ready, rendered) = prepare(row(&plan, Some(row::DEPLOY_PLAN)), 1 << 30)
                .await
                .ok()
                .unwrap();
            assert!(rendered);
            assert_eq!(ready.body, expected);
            // Over the limit: parked at once with the rendered size, the plan kept.
            let refused = prepare(row(&plan, Some(row::DEPLOY_PLAN)), expected.len() - 1)
                .await
                .err()
                .unwrap();
            assert!(refused.at_once);
            assert_eq!(
                refused.reason,
                too_large_reason(expected.len(), expected.len() - 1)
            );
            assert_eq!(refused.row.body, plan);
        }
        let garbage = "x".repeat(2 * RENDER_INLINE_BYTES);
        let refused = prepare(row(&garbage, Some(row::DEPLOY_PLAN)), 1 << 30)
            .await
            .err()
            .unwrap();
        assert!(refused.at_once);
        assert!(refused
            .reason
            .starts_with("the stored deploy plan could not be read"));
    }

    #[tokio::test]
    async fn an_unreadable_plan_or_unknown_format_is_parked_at_once() {
        let refused = prepare(row("{\"nodes\": 3}", Some(row::DEPLOY_PLAN)), 1 << 20)
            .await
            .err()
            .unwrap();
        assert!(refused.at_once);
        assert!(
            refused
                .reason
                .starts_with("the stored deploy plan could not be read"),
            "{}",
            refused.reason
        );
        let refused = prepare(row("{}", Some("zstd")), 1 << 20)
            .await
            .err()
            .unwrap();
        assert!(refused.at_once);
        assert_eq!(
            refused.reason,
            "the row's body format 'zstd' is unknown to this bridge"
        );
    }
}
