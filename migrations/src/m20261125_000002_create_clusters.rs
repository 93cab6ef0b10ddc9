//! `clusters`: the environments being deployed and patched, each on one release.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000001_create_releases::Releases;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Clusters {
    Table,
    Id,
    Name,
    Mode,
    Status,
    ReleaseId,
    PendingReleaseId,
    FuelVersion,
    Attributes,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Clusters::Table)
                    .col(pk_auto(Clusters::Id))
                    .col(string_len_uniq(Clusters::Name, 50))
                    .col(string_len(Clusters::Mode, 20))
                    .col(string_len(Clusters::Status, 20))
                    .col(integer(Clusters::ReleaseId))
                    .col(integer_null(Clusters::PendingReleaseId))
                    .col(string_len(Clusters::FuelVersion, 30))
                    .col(json(Clusters::Attributes))
                    .col(timestamp_with_time_zone(Clusters::CreatedAt))
                    .col(timestamp_with_time_zone(Clusters::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("clusters_release_id_fkey")
                            .from(Clusters::Table, Clusters::ReleaseId)
                            .to(Releases::Table, Releases::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("clusters_pending_release_id_fkey")
                            .from(Clusters::Table, Clusters::PendingReleaseId)
                            .to(Releases::Table, Releases::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Clusters::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
