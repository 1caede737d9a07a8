//! What a failed database call reports.

use http::StatusCode;

use super::DbErrorKind;

/// A failed database call. The message is for the log: it never contains
/// SQL or parameters.
///
/// Converting it into [`Error`](crate::Error) (with `?` in a handler)
/// shows the client only a generic message, with a fitting status:
///
/// | kind | status |
/// |------|--------|
/// | `NotFound` (e.g. `fetch_one` found no row) | `404 Not Found` |
/// | `UniqueViolation`, `Constraint` | `409 Conflict` |
/// | `ConnectionLost`, `Timeout` | `503 Service Unavailable` |
/// | anything else | `500 Internal Server Error` |
///
/// The database's message goes to the log only.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("database error ({kind:?}): {message}")]
pub struct DbError {
    kind: DbErrorKind,
    message: String,
}

impl DbError {
    pub(crate) fn new(kind: DbErrorKind, message: impl Into<String>) -> Self {
        DbError {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong, to match on.
    pub fn kind(&self) -> DbErrorKind {
        self.kind
    }

    /// The database's (or the container's) message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The status and public message of this error as an HTTP answer (see
    /// the table above).
    pub(crate) fn http_status(&self) -> (StatusCode, &'static str) {
        match self.kind {
            DbErrorKind::NotFound => (StatusCode::NOT_FOUND, "not found"),
            DbErrorKind::UniqueViolation | DbErrorKind::Constraint => (StatusCode::CONFLICT, "conflict"),
            DbErrorKind::ConnectionLost | DbErrorKind::Timeout => {
                (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
        }
    }
}

impl std::fmt::Debug for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn db_errors_map_to_statuses() {
        let status = |kind| Error::from(DbError::new(kind, "m")).status().as_u16();
        assert_eq!(status(DbErrorKind::NotFound), 404);
        assert_eq!(status(DbErrorKind::UniqueViolation), 409);
        assert_eq!(status(DbErrorKind::Constraint), 409);
        assert_eq!(status(DbErrorKind::ConnectionLost), 503);
        assert_eq!(status(DbErrorKind::Timeout), 503);
        assert_eq!(status(DbErrorKind::PermissionDenied), 500);
        assert_eq!(status(DbErrorKind::Decode), 500);
    }

    #[test]
    fn db_errors_are_std_errors() {
        let error: Box<dyn std::error::Error + Send + Sync> = Box::new(DbError::new(DbErrorKind::Timeout, "pool"));
        assert_eq!(error.to_string(), "database error (Timeout): pool");
    }
}
