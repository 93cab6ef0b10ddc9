//! `outbox`: a message the broker refuses is retried with a pause that grows, then set aside
//! (parked) with its reason, so the rows behind it go out. `processed_requests` gets an index on
//! `created_at` for its retention sweep.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    /// Times the broker refused the message (channel errors tied to it).
    Failures,
    /// The broker's words at the last refusal.
    LastError,
    /// Not published again before this time.
    NextAttemptAt,
    /// Set aside: not published until an operator retries it (`astute-bridge outbox retry`).
    ParkedAt,
}

#[derive(DeriveIden)]
enum ProcessedRequests {
    Table,
    CreatedAt,
}

const PROCESSED_REQUESTS_BY_AGE: &str = "processed_requests_created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [
            integer(Outbox::Failures).default(0).to_owned(),
            text_null(Outbox::LastError),
            timestamp_with_time_zone_null(Outbox::NextAttemptAt),
            timestamp_with_time_zone_null(Outbox::ParkedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Outbox::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(PROCESSED_REQUESTS_BY_AGE)
                    .table(ProcessedRequests::Table)
                    .col(ProcessedRequests::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(PROCESSED_REQUESTS_BY_AGE)
                    .table(ProcessedRequests::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Outbox::ParkedAt,
            Outbox::NextAttemptAt,
            Outbox::LastError,
            Outbox::Failures,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Outbox::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
