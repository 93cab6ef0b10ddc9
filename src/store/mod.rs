//! The database: SeaORM entities, connection set-up, write transactions and the outbox.

pub mod entity;
pub mod fault;
pub mod outbox;
pub mod task_cache;

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
    let mut options = ConnectOptions::new(settings.url.expose());
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

/// Why a second bridge may not open the same SQLite file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SingleWriterError(String);

/// Takes an exclusive lock beside a SQLite database file, held as long as the returned file
/// lives: SQLite serves one bridge (two would relay the same outbox). PostgreSQL and in-memory
/// databases need no guard.
pub fn single_writer_guard(
    settings: &DatabaseSettings,
) -> Result<Option<std::fs::File>, SingleWriterError> {
    let Some(rest) = settings.url.expose().strip_prefix("sqlite:") else {
        return Ok(None);
    };
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        return Ok(None);
    }
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| SingleWriterError(format!("cannot open {lock_path}: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(SingleWriterError(format!(
            "another astute-bridge is serving the SQLite database {path} (lock {lock_path}); \
             SQLite serves one bridge at a time: use PostgreSQL to run several"
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(SingleWriterError(format!("cannot lock {lock_path}: {e}")))
        }
    }
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
