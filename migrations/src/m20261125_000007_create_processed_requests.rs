//! `processed_requests`: AMQP requests already handled, keyed by message id, for idempotency.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ProcessedRequests {
    Table,
    MessageId,
    Method,
    Response,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProcessedRequests::Table)
                    .col(string_len(ProcessedRequests::MessageId, 255).primary_key())
                    .col(string_len(ProcessedRequests::Method, 64))
                    .col(text_null(ProcessedRequests::Response))
                    .col(timestamp_with_time_zone(ProcessedRequests::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ProcessedRequests::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
