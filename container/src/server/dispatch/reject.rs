//! Every way a request can fail before or around the module, and the one
//! place those failures become responses.

use axum::response::{IntoResponse, Response};
use http::header::{ALLOW, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderValue, StatusCode};

use super::super::websocket;
use crabcat_sdk::abi::wire::ErrorKind;

use crate::lifecycle::ServeError;

/// Every way a request can fail before or around the module. Turned into a
/// response in exactly one place: the `IntoResponse` impl below.
#[derive(Debug)]
pub enum Reject {
    NotFound,
    UriTooLong,
    /// The app has its most requests (or blocking calls) running.
    Busy,
    /// A handler of the app holds a worker thread without yielding.
    Stalled,
    AddSlash(String),
    Unavailable,
    MethodNotAllowed(String),
    BadParam,
    BodyTooLarge,
    BadBody,
    Timeout,
    /// A request to a WebSocket route that is not a handshake.
    UpgradeRequired,
    /// A WebSocket handshake from an origin the app does not allow.
    OriginForbidden,
    /// The managed transaction of a transactional route could not begin or commit.
    Transaction(ErrorKind, String),
    Failed(ServeError),
    /// A static file path that tries to leave its directory (`..`, `%2f`,
    /// `\`, NUL) or is not UTF-8.
    BadPath,
    /// A static file could not be read (logged where it happened).
    FileError,
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let mut extra = None;
        let (status, message) = match self {
            Reject::UpgradeRequired => return websocket::upgrade_required(),
            Reject::OriginForbidden => (StatusCode::FORBIDDEN, "origin not allowed to open a WebSocket here"),
            Reject::NotFound => (StatusCode::NOT_FOUND, "not found"),
            Reject::UriTooLong => (StatusCode::URI_TOO_LONG, "request target too long"),
            Reject::Busy => (StatusCode::SERVICE_UNAVAILABLE, "application busy"),
            Reject::Stalled => (StatusCode::SERVICE_UNAVAILABLE, "application stalled"),
            Reject::AddSlash(location) => {
                extra = Some((LOCATION, location));
                (StatusCode::PERMANENT_REDIRECT, "moved")
            }
            Reject::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "application not available"),
            Reject::MethodNotAllowed(allow) => {
                extra = Some((ALLOW, allow));
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            Reject::BadParam => (StatusCode::BAD_REQUEST, "bad path parameter"),
            Reject::BadPath => (StatusCode::BAD_REQUEST, "bad path"),
            Reject::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            Reject::BadBody => (StatusCode::BAD_REQUEST, "could not read request body"),
            Reject::Timeout => (StatusCode::GATEWAY_TIMEOUT, "request timed out"),
            Reject::Failed(ServeError::Cancelled) => (StatusCode::SERVICE_UNAVAILABLE, "application stopping"),
            Reject::Transaction(..) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
            Reject::Failed(_) | Reject::FileError => (StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 of the container's is temporary: say when to retry.
            extra = Some((RETRY_AFTER, "1".to_owned()));
        }
        let content_type = [(CONTENT_TYPE, "text/plain; charset=utf-8")];
        let mut response = (status, content_type, format!("{message}\n")).into_response();
        if let Some((name, value)) = extra
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// What a failed body read means: too large (the limit was hit) or
/// unreadable.
pub(super) fn body_error(error: axum::Error) -> Reject {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return Reject::BodyTooLarge;
        }
        source = e.source();
    }
    Reject::BadBody
}
