//! `tasks.cache`: the exact cast sent to Astute, written by the relay once the broker has
//! confirmed it.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// Stores `cast` as the cache of the task `task_uuid`. The text is moved into the statement,
/// not copied, and stored as it is: PostgreSQL's `json` keeps its input text verbatim, SQLite
/// stores text.
pub async fn store<C: ConnectionTrait>(db: &C, task_uuid: &str, cast: String) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "UPDATE tasks SET cache = CAST($1 AS json) WHERE uuid = $2",
        _ => "UPDATE tasks SET cache = ? WHERE uuid = ?",
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [cast.into(), task_uuid.into()],
    ))
    .await?;
    Ok(())
}
