//! `tasks.cache`: the exact cast sent to Astute, written by the relay once the broker has
//! confirmed the cast.

use sea_orm::sqlx;
use sea_orm::{DatabaseConnection, DbBackend, DbErr, RuntimeErr};

/// Stores `cast` as the cache of the task `task_uuid`, in a statement of its own. The text is
/// moved into the statement rather than copied (SeaORM would copy its bound values: one more
/// cast-sized buffer at the moment memory peaks), and stored as it is: PostgreSQL's `json`
/// keeps its input text verbatim, SQLite stores text.
///
/// Its own statement, not the relay's transaction: on SQLite that transaction holds the write
/// lock this statement needs. Written before the outbox row is deleted, so a crash between the
/// two publishes the cast again and writes it again, never leaves it unwritten.
pub async fn store(db: &DatabaseConnection, task_uuid: &str, cast: String) -> Result<(), DbErr> {
    let written = match db.get_database_backend() {
        DbBackend::Postgres => {
            sqlx::query("UPDATE tasks SET cache = CAST($1 AS json) WHERE uuid = $2")
                .bind(cast)
                .bind(task_uuid)
                .execute(db.get_postgres_connection_pool())
                .await
                .map(drop)
        }
        DbBackend::Sqlite => sqlx::query("UPDATE tasks SET cache = ? WHERE uuid = ?")
            .bind(cast)
            .bind(task_uuid)
            .execute(db.get_sqlite_connection_pool())
            .await
            .map(drop),
        other => return Err(DbErr::Custom(format!("{other:?} is not supported"))),
    };
    written.map_err(|err| DbErr::Exec(RuntimeErr::SqlxError(err.into())))
}
