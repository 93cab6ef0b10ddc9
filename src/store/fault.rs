//! Whether a database error can go away by itself. A lost connection, a serialization failure,
//! a deadlock or a busy SQLite file are worth trying again; a value the database refuses (a
//! constraint, a value out of range, bad text) fails the same way every time.

use sea_orm::{DbBackend, DbErr, RuntimeErr};

/// What kind of failure a database error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Trying again later can succeed.
    Transient,
    /// Trying again gives the same error.
    Permanent,
}

/// Classifies an error that `backend` returned.
pub fn fault_of(backend: DbBackend, err: &DbErr) -> Fault {
    let runtime = match err {
        DbErr::ConnectionAcquire(_) => return Fault::Transient,
        DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return Fault::Permanent,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return Fault::Permanent;
    };
    use sea_orm::sqlx::Error;
    match sqlx.as_ref() {
        Error::Io(_)
        | Error::Tls(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed
        | Error::Protocol(_) => Fault::Transient,
        Error::Database(db) => match db.code() {
            Some(code) => fault_of_code(backend, &code),
            None => Fault::Permanent,
        },
        _ => Fault::Permanent,
    }
}

/// Classifies a database's own error code: a PostgreSQL SQLSTATE, or a SQLite (extended)
/// result code.
pub fn fault_of_code(backend: DbBackend, code: &str) -> Fault {
    let transient = match backend {
        DbBackend::Postgres => {
            // 08 connection exception, 40001 serialization failure, 40P01 deadlock,
            // 53 insufficient resources (too many connections), 55P03 lock not available,
            // 57P01..57P03 the server shutting down or starting.
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(
                    code,
                    "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03"
                )
        }
        DbBackend::Sqlite => {
            // The primary result code is the low byte of the extended one:
            // 5 SQLITE_BUSY, 6 SQLITE_LOCKED.
            code.parse::<i32>()
                .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6))
        }
        _ => false,
    };
    if transient {
        Fault::Transient
    } else {
        Fault::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_codes_a_retry_can_fix() {
        for code in [
            "08000", "08003", "08006", "40001", "40P01", "53300", "55P03", "57P01", "57P02",
            "57P03",
        ] {
            assert_eq!(
                fault_of_code(DbBackend::Postgres, code),
                Fault::Transient,
                "{code}"
            );
        }
    }

    #[test]
    fn postgres_codes_a_retry_cannot_fix() {
        // 22021 is the NUL byte in text, 22003 a number out of range, 23xxx constraints,
        // 42xxx a broken statement, 57014 a cancelled statement (a timeout that repeats).
        for code in [
            "22021", "22003", "22001", "23505", "23503", "23514", "23502", "42P01", "42703",
            "57014", "XX000", "P0001",
        ] {
            assert_eq!(
                fault_of_code(DbBackend::Postgres, code),
                Fault::Permanent,
                "{code}"
            );
        }
    }

    #[test]
    fn sqlite_busy_and_locked_are_transient_in_any_extended_form() {
        // 5 BUSY, 261 BUSY_RECOVERY, 517 BUSY_SNAPSHOT, 6 LOCKED, 262 LOCKED_SHAREDCACHE.
        for code in ["5", "261", "517", "6", "262"] {
            assert_eq!(
                fault_of_code(DbBackend::Sqlite, code),
                Fault::Transient,
                "{code}"
            );
        }
        // 19 CONSTRAINT, 1811 CONSTRAINT_TRIGGER, 2067 CONSTRAINT_UNIQUE, 1 ERROR, 13 FULL.
        for code in ["19", "1811", "2067", "1", "13", "not a number"] {
            assert_eq!(
                fault_of_code(DbBackend::Sqlite, code),
                Fault::Permanent,
                "{code}"
            );
        }
    }

    #[test]
    fn errors_without_a_database_code() {
        use sea_orm::ConnAcquireErr;
        assert_eq!(
            fault_of(
                DbBackend::Postgres,
                &DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)
            ),
            Fault::Transient
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let lost = DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
            sea_orm::sqlx::Error::Io(io),
        )));
        assert_eq!(fault_of(DbBackend::Postgres, &lost), Fault::Transient);
        let closed = DbErr::Exec(RuntimeErr::SqlxError(std::sync::Arc::new(
            sea_orm::sqlx::Error::PoolClosed,
        )));
        assert_eq!(fault_of(DbBackend::Sqlite, &closed), Fault::Transient);
        assert_eq!(
            fault_of(DbBackend::Postgres, &DbErr::Type("bad".into())),
            Fault::Permanent
        );
        assert_eq!(
            fault_of(
                DbBackend::Postgres,
                &DbErr::Exec(RuntimeErr::Internal("x".into()))
            ),
            Fault::Permanent
        );
    }
}
