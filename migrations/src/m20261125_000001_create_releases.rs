//! `releases`: the OpenStack releases a cluster can run or be upgraded to.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Releases {
    Table,
    Id,
    Name,
    Version,
    OperatingSystem,
    Description,
    State,
    CanUpdateFromVersions,
    CompatibleFuelVersions,
    RepoMetadata,
    PuppetModulesSource,
    PuppetManifestsSource,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Releases::Table)
                    .col(pk_auto(Releases::Id))
                    .col(string_len(Releases::Name, 100))
                    .col(string_len(Releases::Version, 30))
                    .col(string_len(Releases::OperatingSystem, 20))
                    .col(text(Releases::Description))
                    .col(string_len(Releases::State, 20))
                    .col(json(Releases::CanUpdateFromVersions))
                    .col(json(Releases::CompatibleFuelVersions))
                    .col(json(Releases::RepoMetadata))
                    .col(text(Releases::PuppetModulesSource))
                    .col(text(Releases::PuppetManifestsSource))
                    .col(timestamp_with_time_zone(Releases::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("releases_name_version_key")
                    .table(Releases::Table)
                    .col(Releases::Name)
                    .col(Releases::Version)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Releases::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
