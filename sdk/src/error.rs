//! The error type of handlers and `init`.

use std::fmt;

use http::StatusCode;

use crate::response::{IntoResponse, Response};

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error a handler returns: an HTTP status, a message for the client,
/// and (for server errors) a detail that only goes to the log.
///
/// Any `std::error::Error` converts into a `500` with `?`; the client sees
/// "internal server error" and the log gets the cause.
pub struct Error {
    status: StatusCode,
    message: String,
    detail: Option<String>,
}

impl Error {
    /// An error with `status` whose `message` is shown to the client.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
            detail: None,
        }
    }

    /// `400 Bad Request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::new(StatusCode::BAD_REQUEST, message)
    }

    /// `404 Not Found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(StatusCode::NOT_FOUND, message)
    }

    /// `500 Internal Server Error`: the client sees a generic message,
    /// `detail` goes to the log.
    pub fn internal(detail: impl Into<String>) -> Self {
        Error {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal server error".to_owned(),
            detail: Some(detail.into()),
        }
    }

    /// An error with a public `message` and a `detail` for the log only.
    pub fn with_detail(status: StatusCode, message: impl Into<String>, detail: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
            detail: Some(detail.into()),
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    /// The detail if there is one (this is what goes to the log), else the message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail.as_deref().unwrap_or(&self.message))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("status", &self.status.as_u16())
            .field("message", &self.message)
            .field("detail", &self.detail)
            .finish()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        let mut detail = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        Error::internal(detail)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Some(detail) = &self.detail {
            if self.status.is_server_error() {
                log::error!("{} {}: {detail}", self.status.as_u16(), self.message);
            } else {
                log::info!("{} {}: {detail}", self.status.as_u16(), self.message);
            }
        }
        Response::error(self.status, &self.message)
    }
}
