//! `tasks`: deployment/upgrade runs of a cluster, tracked from Astute's `deploy_resp` replies.
//!
//! The table's `cache` column (the exact cast sent to Astute, up to `amqp.max_message_bytes`) is
//! left out of the entity on purpose: it is written once, by the outbox relay when the broker has
//! confirmed the cast (`store::task_cache`), and never read back by the bridge, so no query loads it and no answer
//! carries it.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub uuid: String,
    pub cluster_id: i32,
    pub name: String,
    pub status: String,
    pub progress: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub message: Option<String>,
    pub from_release_id: Option<i32>,
    pub to_release_id: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::cluster::Entity",
        from = "Column::ClusterId",
        to = "super::cluster::Column::Id",
        on_delete = "Cascade"
    )]
    Cluster,
    #[sea_orm(
        belongs_to = "super::release::Entity",
        from = "Column::FromReleaseId",
        to = "super::release::Column::Id",
        on_delete = "SetNull"
    )]
    FromRelease,
    #[sea_orm(
        belongs_to = "super::release::Entity",
        from = "Column::ToReleaseId",
        to = "super::release::Column::Id",
        on_delete = "SetNull"
    )]
    ToRelease,
}

impl Related<super::cluster::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Cluster.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
