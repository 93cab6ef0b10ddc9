//! `astute-bridge audit [--cluster N] [--before ID] [--limit N]`: the audit trail, newest first, read from the
//! database (as `GET /api/audit/` shows it).

use astute_bridge::config::Settings;
use astute_bridge::service::audit;
use astute_bridge::store;
use serde_json::Value;

/// The newest `limit` rows older than `before`, of one cluster or all, as JSON.
pub async fn list(
    settings: &Settings,
    cluster: Option<i32>,
    before: Option<i32>,
    limit: u64,
) -> anyhow::Result<Value> {
    let db = store::connect(&settings.database).await?;
    let rows = audit::list(&db, cluster, before, Some(limit))
        .await
        .map_err(|err| anyhow::anyhow!("{}", err.to_refusal().message));
    db.close().await.ok();
    rows
}
