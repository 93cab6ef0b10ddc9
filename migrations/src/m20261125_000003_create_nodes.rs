//! `nodes`: the servers of a cluster, with their roles and deployment progress.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000002_create_clusters::Clusters;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Nodes {
    Table,
    Id,
    ClusterId,
    Name,
    Fqdn,
    Roles,
    Status,
    Progress,
    ErrorType,
    ErrorMsg,
    Online,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Nodes::Table)
                    .col(pk_auto(Nodes::Id))
                    .col(integer(Nodes::ClusterId))
                    .col(string_len(Nodes::Name, 100))
                    .col(string_len(Nodes::Fqdn, 255))
                    .col(json(Nodes::Roles))
                    .col(string_len(Nodes::Status, 20))
                    .col(integer(Nodes::Progress))
                    .col(string_len_null(Nodes::ErrorType, 20))
                    .col(text_null(Nodes::ErrorMsg))
                    .col(boolean(Nodes::Online))
                    .foreign_key(
                        ForeignKey::create()
                            .name("nodes_cluster_id_fkey")
                            .from(Nodes::Table, Nodes::ClusterId)
                            .to(Clusters::Table, Clusters::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("nodes_cluster_id_idx")
                    .table(Nodes::Table)
                    .col(Nodes::ClusterId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Nodes::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
