//! `astute-bridge outbox list|retry`: messages the broker refused and the relay set aside
//! (parked), with why; and putting them back in line once the cause is fixed.

use astute_bridge::config::Settings;
use astute_bridge::core::enums::TaskStatus;
use astute_bridge::store::{self, entity::outbox as row, entity::task, outbox};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

/// The parked messages, oldest first, as JSON.
pub async fn list(settings: &Settings, limit: u64) -> anyhow::Result<Value> {
    let db = store::connect(&settings.database).await?;
    let rows = outbox::parked(&db, limit).await?;
    db.close().await.ok();
    Ok(Value::Array(rows.iter().map(describe).collect()))
}

/// Puts parked messages back in line (`ids`, or all when empty). A cast whose task has ended
/// meanwhile (a parked cast fails its task) is left parked: publishing it now would start a
/// deployment nobody follows. Returns what was done, in words.
pub async fn retry(settings: &Settings, ids: &[i32]) -> anyhow::Result<String> {
    let db = store::connect(&settings.database).await?;
    let parked = outbox::parked(&db, u64::MAX >> 1).await?;
    let mut chosen = Vec::new();
    let mut kept = Vec::new();
    for message in parked
        .iter()
        .filter(|m| ids.is_empty() || ids.contains(&m.id))
    {
        let is_cast = message.mandatory && message.exchange == settings.amqp.naily_exchange;
        if is_cast && !task_runs(&db, message_id(message)).await? {
            kept.push(format!(
                "{} (the cast of task {}, which has ended; start a new update or rollback instead)",
                message.id,
                message_id(message)
            ));
            continue;
        }
        chosen.push(message.id);
    }
    let done = outbox::unpark(&db, &chosen).await?;
    db.close().await.ok();
    let mut said =
        format!("{done} message(s) put back in the outbox; the relay publishes them next");
    if !kept.is_empty() {
        said.push_str(&format!("\nleft parked: {}", kept.join(", ")));
    }
    Ok(said)
}

async fn task_runs(db: &sea_orm::DatabaseConnection, uuid: &str) -> anyhow::Result<bool> {
    let found = task::Entity::find()
        .filter(task::Column::Uuid.eq(uuid))
        .one(db)
        .await?;
    Ok(found.is_some_and(|t| t.status == TaskStatus::Running.as_str()))
}

fn message_id(message: &row::Model) -> &str {
    message
        .properties
        .get("message_id")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn describe(message: &row::Model) -> Value {
    json!({
        "id": message.id,
        "exchange": message.exchange,
        "routing_key": message.routing_key,
        "message_id": message_id(message),
        "correlation_id": message.properties.get("correlation_id"),
        "bytes": message.body.len(),
        // `deploy_plan`: `bytes` are the plan's; the cast is rendered from it when published.
        "body_format": message.body_format,
        "failures": message.failures,
        "reason": message.last_error,
        "created_at": message.created_at,
        "parked_at": message.parked_at,
    })
}
