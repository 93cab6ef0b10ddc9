//! `notifications`: user-facing messages about clusters, nodes and tasks.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000002_create_clusters::Clusters;
use crate::m20261125_000003_create_nodes::Nodes;
use crate::m20261125_000004_create_tasks::Tasks;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    ClusterId,
    NodeId,
    TaskId,
    Topic,
    Message,
    Status,
    Datetime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(pk_auto(Notifications::Id))
                    .col(integer_null(Notifications::ClusterId))
                    .col(integer_null(Notifications::NodeId))
                    .col(integer_null(Notifications::TaskId))
                    .col(string_len(Notifications::Topic, 20))
                    .col(text(Notifications::Message))
                    .col(string_len(Notifications::Status, 20))
                    .col(timestamp_with_time_zone(Notifications::Datetime))
                    .foreign_key(
                        ForeignKey::create()
                            .name("notifications_cluster_id_fkey")
                            .from(Notifications::Table, Notifications::ClusterId)
                            .to(Clusters::Table, Clusters::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("notifications_node_id_fkey")
                            .from(Notifications::Table, Notifications::NodeId)
                            .to(Nodes::Table, Nodes::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("notifications_task_id_fkey")
                            .from(Notifications::Table, Notifications::TaskId)
                            .to(Tasks::Table, Tasks::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("notifications_cluster_id_idx")
                    .table(Notifications::Table)
                    .col(Notifications::ClusterId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Notifications::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
