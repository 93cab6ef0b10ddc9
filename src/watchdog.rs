//! The lost-orchestrator watchdog: a running task that has heard nothing from Astute for
//! `silence_secs` ends as failed, through the same rules as an `error` reply from Astute.
//! Every bridge runs one; the task's row lock and a re-check make each expiry happen once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::service::replies::{expire_if_silent, silent_running_tasks, ReplyOutcome};
use crate::service::Context;
use crate::store::{self, outbox};

pub struct Watchdog {
    db: DatabaseConnection,
    ctx: Context,
    silence: Duration,
    interval: Duration,
    wake: Arc<Notify>,
}

impl Watchdog {
    pub fn new(
        db: DatabaseConnection,
        ctx: Context,
        silence: Duration,
        interval: Duration,
        wake: Arc<Notify>,
    ) -> Self {
        Watchdog {
            db,
            ctx,
            silence,
            interval,
            wake,
        }
    }

    /// Sweeps every `interval` until `stop` (disabled: only waits for `stop`, so the supervisor
    /// never takes its end for a failure). A failed sweep is logged and tried again later.
    pub async fn run(self, stop: CancellationToken) {
        if self.silence.is_zero() {
            stop.cancelled().await;
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(err) = self.sweep().await {
                tracing::warn!(error = %err, "watchdog sweep failed; trying again later");
            }
        }
    }

    /// Ends every task silent for too long; returns how many.
    pub async fn sweep(&self) -> Result<usize, DbErr> {
        let silence = chrono::Duration::from_std(self.silence).unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now() - silence;
        let reason = format!(
            "No word from Astute for {} s: the deployment is presumed lost (was Astute restarted?).",
            self.silence.as_secs()
        );
        let mut expired = 0;
        let silent = silent_running_tasks(&self.db, cutoff).await?;
        if silent.is_empty() {
            return Ok(0);
        }
        // Astute cannot have heard of a task whose cast still waits in the outbox: its clock
        // starts when the broker confirms the cast (the relay touches the task then).
        let waiting = outbox::waiting_casts(&self.db, &self.ctx.amqp.naily_exchange).await?;
        for uuid in silent {
            if waiting.contains(&uuid) {
                continue;
            }
            let txn = store::begin_write(&self.db).await?;
            let outcome = expire_if_silent(&txn, &self.ctx, &uuid, cutoff, &reason).await?;
            txn.commit().await?;
            if matches!(outcome, ReplyOutcome::Applied { .. }) {
                expired += 1;
                self.wake.notify_one();
                tracing::warn!(task_uuid = %uuid, silence_secs = self.silence.as_secs(), "task expired: no word from Astute");
            }
        }
        Ok(expired)
    }
}
