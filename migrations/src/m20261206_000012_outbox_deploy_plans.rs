//! `outbox.body_format`: how the relay turns a row's `body` into what it publishes. Empty: the
//! body is the message. `deploy_plan`: the body is the plan of a `deploy` cast (a few hundred
//! bytes a node), rendered into the cast when it is published, so the cast itself (tens of MB
//! for a large environment) is never written to the database before it goes out; the relay
//! stores it in the task's `cache` once the broker has confirmed it.
//!
//! `outbox.published_at`: set on a plan's row once its cast is confirmed, in the relay's
//! transaction, so that a failure before the cast is stored in `cache` leaves a row that is
//! stored later and never published again.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    BodyFormat,
    PublishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [
            text_null(Outbox::BodyFormat),
            timestamp_with_time_zone_null(Outbox::PublishedAt),
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
        Ok(())
    }

    /// Refused while plans wait in the outbox: without the column they would be published as
    /// they are, plans instead of casts. Let the relay publish them (or delete the parked ones
    /// with `astute-bridge outbox`) first.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let waiting = manager
            .get_connection()
            .query_one_raw(sea_orm_migration::sea_orm::Statement::from_string(
                manager.get_database_backend(),
                "SELECT COUNT(*) AS n FROM outbox WHERE body_format IS NOT NULL",
            ))
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        if waiting > 0 {
            return Err(DbErr::Migration(format!(
                "{waiting} deploy cast(s) still wait in the outbox as plans; start the bridge to \
                 publish them (or remove parked ones) before migrating down"
            )));
        }
        for column in [Outbox::PublishedAt, Outbox::BodyFormat] {
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
}
