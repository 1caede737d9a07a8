//! What a sqlx error means to an app.

use crabcat_sdk::abi::wire::ErrorKind;

/// The kind an app can match on, and a message for the log.
pub fn classify(error: &sqlx::Error) -> (ErrorKind, String) {
    let kind = match error {
        sqlx::Error::RowNotFound => ErrorKind::NotFound,
        sqlx::Error::PoolTimedOut => ErrorKind::Timeout,
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
            ErrorKind::ConnectionLost
        }
        sqlx::Error::Database(db) => database_kind(db.as_ref()),
        _ => ErrorKind::Other,
    };
    (kind, error.to_string())
}

fn database_kind(db: &dyn sqlx::error::DatabaseError) -> ErrorKind {
    match db.kind() {
        sqlx::error::ErrorKind::UniqueViolation => ErrorKind::UniqueViolation,
        sqlx::error::ErrorKind::ForeignKeyViolation
        | sqlx::error::ErrorKind::NotNullViolation
        | sqlx::error::ErrorKind::CheckViolation => ErrorKind::Constraint,
        _ => match db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            Some(mysql) => mysql_kind(mysql.number()),
            None => code_kind(db.code().as_deref()),
        },
    }
}

/// PostgreSQL by SQLSTATE, SQLite by result code.
fn code_kind(code: Option<&str>) -> ErrorKind {
    match code {
        // PostgreSQL: statement timeout / lock timeout; SQLite: busy, locked.
        Some("57014" | "55P03" | "5" | "6" | "517" | "262") => ErrorKind::Timeout,
        // PostgreSQL: the database cannot be reached or used right now:
        // connection exceptions (08), operator intervention (57P: shutdown,
        // terminated), insufficient resources (53: too many connections),
        // invalid authorization (28), no such database (3D000), database
        // not accepting connections (55000).
        Some(code)
            if ["08", "57P", "53", "28"].iter().any(|class| code.starts_with(class))
                || matches!(code, "3D000" | "55000") =>
        {
            ErrorKind::ConnectionLost
        }
        _ => ErrorKind::Other,
    }
}

/// MySQL/MariaDB by error number (their SQLSTATEs are too coarse).
fn mysql_kind(number: u16) -> ErrorKind {
    match number {
        // Lock wait timeout; statement timeouts (MariaDB's
        // max_statement_time, MySQL's max_execution_time); NOWAIT.
        1205 | 1969 | 3024 | 3572 => ErrorKind::Timeout,
        // The database cannot be reached or used right now: too many
        // connections (overall, per user), access denied (user, database),
        // unknown database, host blocked or not allowed, server shutdown,
        // connection killed (MariaDB), disconnected for inactivity (MySQL).
        1040 | 1203 | 1045 | 1044 | 1049 | 1129 | 1130 | 1053 | 1927 | 4031 => ErrorKind::ConnectionLost,
        _ => ErrorKind::Other,
    }
}
