//! `audit`: who asked for each change, when, over which transport, to what, and how it ended;
//! written in the transaction of the change itself (or of its refusal).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Audit {
    Table,
    Id,
    At,
    Actor,
    Transport,
    Method,
    ClusterId,
    ReleaseId,
    NodeIds,
    Outcome,
}

const BY_CLUSTER: &str = "audit_cluster_id_idx";
const BY_AGE: &str = "audit_at_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Audit::Table)
                    .col(pk_auto(Audit::Id))
                    .col(timestamp_with_time_zone(Audit::At))
                    .col(string_len(Audit::Actor, 255))
                    .col(string_len(Audit::Transport, 8))
                    .col(string_len(Audit::Method, 64))
                    .col(integer_null(Audit::ClusterId))
                    .col(integer_null(Audit::ReleaseId))
                    .col(text_null(Audit::NodeIds))
                    .col(string_len(Audit::Outcome, 32))
                    .to_owned(),
            )
            .await?;
        // No foreign keys: the trail outlives the clusters and releases it names.
        for (name, column) in [(BY_CLUSTER, Audit::ClusterId), (BY_AGE, Audit::At)] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Audit::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Audit::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
