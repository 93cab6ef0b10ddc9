//! `audit`: one row per state-changing request, over AMQP or HTTP, refused ones included.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "audit")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub at: DateTimeUtc,
    /// The broker user (`user_id`), the HTTP token's name, or `anonymous`.
    pub actor: String,
    /// `amqp` or `http`.
    pub transport: String,
    pub method: String,
    pub cluster_id: Option<i32>,
    pub release_id: Option<i32>,
    /// A JSON array of node ids, when the request named or made nodes.
    #[sea_orm(column_type = "Text", nullable)]
    pub node_ids: Option<String>,
    /// `ok`, or the refusal's error code.
    pub outcome: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
