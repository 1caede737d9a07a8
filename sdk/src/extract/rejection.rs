//! Why an extractor refused a request.

use http::StatusCode;
use serde::de::value::Error as DeError;

use crate::error::Error;
use crate::response::{IntoResponse, Response};

/// Why an extractor refused a request. It answers like an [`Error`]: an
/// `application/problem+json` document with the status below and the
/// message (with its cause) as `detail`.
///
/// | variant | status |
/// |---------|--------|
/// | [`InvalidPath`](Self::InvalidPath), [`InvalidQuery`](Self::InvalidQuery), [`InvalidJsonSyntax`](Self::InvalidJsonSyntax), [`BodyNotUtf8`](Self::BodyNotUtf8), [`NotWebSocket`](Self::NotWebSocket) | `400 Bad Request` |
/// | [`UnsupportedMediaType`](Self::UnsupportedMediaType) | `415 Unsupported Media Type` |
/// | [`InvalidJsonData`](Self::InvalidJsonData), [`InvalidForm`](Self::InvalidForm) | `422 Unprocessable Entity` |
/// | [`PathParameterCount`](Self::PathParameterCount) | `500 Internal Server Error` (a handler that does not fit its route) |
///
/// The statuses are axum's. To answer a rejection your own way, take
/// `Result<Json<T>, Rejection>` (any extractor works) and match on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// A path parameter does not parse into its type.
    #[error("invalid path parameter")]
    InvalidPath(#[source] DeError),
    /// The route pattern has another number of parameters than the
    /// handler's [`Path`](crate::Path) type takes: a mistake in the app.
    #[error("the handler takes {expected} path parameters, its route has {found}")]
    PathParameterCount {
        /// What the handler's type takes.
        expected: usize,
        /// What the route pattern has.
        found: usize,
    },
    /// The query string does not fit the handler's type.
    #[error("invalid query string")]
    InvalidQuery(#[source] DeError),
    /// The body does not have the content type the extractor reads.
    #[error("expected a request body with content-type {expected}")]
    UnsupportedMediaType {
        /// The content type(s) the extractor accepts.
        expected: &'static str,
    },
    /// The body is not JSON.
    #[error("invalid JSON body")]
    InvalidJsonSyntax(#[source] serde_json::Error),
    /// The body is JSON, but not of the shape the handler's type has.
    #[error("invalid JSON data")]
    InvalidJsonData(#[source] serde_json::Error),
    /// The form body does not fit the handler's type.
    #[error("invalid form body")]
    InvalidForm(#[source] DeError),
    /// The body should be text but is not UTF-8.
    #[error("request body is not valid UTF-8")]
    BodyNotUtf8,
    /// A [`WebSocket`](crate::WebSocket) was asked for on a request that is
    /// not a WebSocket handshake (or one already accepted).
    #[error("not a WebSocket handshake on a websocket route")]
    NotWebSocket,
}

impl Rejection {
    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::InvalidPath(_)
            | Rejection::InvalidQuery(_)
            | Rejection::InvalidJsonSyntax(_)
            | Rejection::BodyNotUtf8
            | Rejection::NotWebSocket => StatusCode::BAD_REQUEST,
            Rejection::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::InvalidJsonData(_) | Rejection::InvalidForm(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::PathParameterCount { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A JSON parse error, by its kind: syntax (400) or shape (422).
    pub(crate) fn json(error: serde_json::Error) -> Self {
        match error.classify() {
            serde_json::error::Category::Data => Rejection::InvalidJsonData(error),
            _ => Rejection::InvalidJsonSyntax(error),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        Error::from(self).into_response()
    }
}
