//! Bounded growth: idempotency records older than `retention.processed_requests_days` are
//! pruned, and so, when `retention.task_cache_days` is set, are the casts kept in ended tasks'
//! `cache`, and audit rows older than `retention.audit_days`. Every bridge sweeps; the deletes are idempotent, so several sweeping at once is
//! harmless.

use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use tokio_util::sync::CancellationToken;

use crate::config::RetentionSettings;
use crate::core::enums::TaskStatus;
use crate::store::entity::{audit, processed_request, task};

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub processed_requests: u64,
    pub task_caches: u64,
    pub audit: u64,
}

pub struct Retention {
    db: DatabaseConnection,
    settings: RetentionSettings,
}

impl Retention {
    pub fn new(db: DatabaseConnection, settings: RetentionSettings) -> Self {
        Retention { db, settings }
    }

    /// Sweeps at start, then every `interval_secs`, until `stop`. A failed sweep is logged and
    /// tried again at the next one.
    pub async fn run(self, stop: CancellationToken) {
        let interval = Duration::from_secs(Ord::max(self.settings.interval_secs, 1));
        loop {
            match self.sweep().await {
                Ok(swept) if swept != Swept::default() => {
                    tracing::info!(
                        processed_requests = swept.processed_requests,
                        task_caches = swept.task_caches,
                        audit = swept.audit,
                        "retention: old records pruned"
                    )
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "retention sweep failed; trying again later")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    pub async fn sweep(&self) -> Result<Swept, DbErr> {
        let mut swept = Swept::default();
        if self.settings.processed_requests_days > 0 {
            let cutoff = Utc::now() - days(self.settings.processed_requests_days);
            swept.processed_requests = processed_request::Entity::delete_many()
                .filter(processed_request::Column::CreatedAt.lt(cutoff))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        if self.settings.task_cache_days > 0 {
            let cutoff = Utc::now() - days(self.settings.task_cache_days);
            swept.task_caches = task::Entity::update_many()
                .col_expr(cache(), Expr::value(Option::<serde_json::Value>::None))
                .filter(task::Column::Status.ne(TaskStatus::Running.as_str()))
                .filter(task::Column::UpdatedAt.lt(cutoff))
                .filter(Expr::col(cache()).is_not_null())
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        if self.settings.audit_days > 0 {
            let cutoff = Utc::now() - days(self.settings.audit_days);
            swept.audit = audit::Entity::delete_many()
                .filter(audit::Column::At.lt(cutoff))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        Ok(swept)
    }
}

/// `tasks.cache`, which the entity leaves out (it is never read back; see `entity::task`).
fn cache() -> Alias {
    Alias::new("cache")
}

fn days(n: u32) -> chrono::Duration {
    chrono::Duration::days(i64::from(n))
}
