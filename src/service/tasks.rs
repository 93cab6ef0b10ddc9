//! Tasks, read by uuid.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use super::{to_json, ServiceResult};
use crate::core::refusal::Refusal;
use crate::store::entity::task;

pub async fn get_task<C: ConnectionTrait>(db: &C, uuid: &str) -> ServiceResult<Value> {
    let found = task::Entity::find()
        .filter(task::Column::Uuid.eq(uuid))
        .one(db)
        .await?
        .ok_or_else(|| Refusal::not_found(format!("task {uuid} does not exist")))?;
    Ok(to_json(&found))
}
