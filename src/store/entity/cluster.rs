//! `clusters`: the environments being deployed and patched, each on one release.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "clusters")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub name: String,
    pub mode: String,
    pub status: String,
    pub release_id: i32,
    pub pending_release_id: Option<i32>,
    pub fuel_version: String,
    #[sea_orm(column_type = "Json")]
    pub attributes: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::release::Entity",
        from = "Column::ReleaseId",
        to = "super::release::Column::Id",
        on_delete = "Restrict"
    )]
    Release,
    #[sea_orm(
        belongs_to = "super::release::Entity",
        from = "Column::PendingReleaseId",
        to = "super::release::Column::Id",
        on_delete = "Restrict"
    )]
    PendingRelease,
    #[sea_orm(has_many = "super::node::Entity")]
    Node,
    #[sea_orm(has_many = "super::task::Entity")]
    Task,
}

impl Related<super::release::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Release.def()
    }
}

impl Related<super::node::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Node.def()
    }
}

impl Related<super::task::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Task.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
