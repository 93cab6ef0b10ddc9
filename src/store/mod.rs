//! The database: SeaORM entities, connection set-up, write transactions and the outbox.

pub mod entity;
pub mod outbox;

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::config::DatabaseSettings;

/// SQLite pool size: one writer at a time anyway (write transactions begin IMMEDIATE), a few
/// readers beside it thanks to WAL.
const SQLITE_POOL: u32 = 4;

/// Opens the pool. SQLite gets WAL, full fsync on commit, foreign keys and a busy timeout;
/// SQL statements are not logged (SeaORM would log each at INFO).
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let timeout = Duration::from_secs(settings.connect_timeout_secs);
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .sqlx_logging(false)
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        .max_connections(if settings.is_sqlite() {
            SQLITE_POOL
        } else {
            settings.max_connections
        })
        .map_sqlx_sqlite_opts(move |opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(timeout)
        });
    Database::connect(options).await
}

/// Runs every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Begins a transaction that will write. On SQLite it takes the write lock at BEGIN, so two
/// writers never both read and then fail to upgrade (SQLite ignores row locks; this is how it
/// serialises). On PostgreSQL, writers lock the rows they change with `SELECT … FOR UPDATE`.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let mut options = TransactionOptions::default();
    if db.get_database_backend() == DbBackend::Sqlite {
        options.sqlite_transaction_mode = Some(SqliteTransactionMode::Immediate);
    }
    db.begin_with_options(options).await
}

/// Whether the error is a unique-constraint violation (the same on both backends).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
