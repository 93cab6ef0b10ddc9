//! `releases`: the OpenStack releases a cluster can run or be upgraded to.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "releases")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    pub version: String,
    pub operating_system: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub state: String,
    #[sea_orm(column_type = "Json")]
    pub can_update_from_versions: Json,
    #[sea_orm(column_type = "Json")]
    pub compatible_fuel_versions: Json,
    #[sea_orm(column_type = "Json")]
    pub repo_metadata: Json,
    #[sea_orm(column_type = "Text")]
    pub puppet_modules_source: String,
    #[sea_orm(column_type = "Text")]
    pub puppet_manifests_source: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Clusters currently running this release (`clusters.release_id`).
    #[sea_orm(has_many = "super::cluster::Entity")]
    Cluster,
}

impl Related<super::cluster::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Cluster.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
