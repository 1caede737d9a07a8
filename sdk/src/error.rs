//! The error type of handlers and `init`, and its one HTTP form: an RFC 9457
//! problem document (`application/problem+json`).

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::db::DbError;
use crate::extract::Rejection;
use crate::response::{IntoResponse, Response};

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The content type of every error response the SDK writes.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error a handler returns: an HTTP status, a message for the client,
/// and (for server errors) a detail that only goes to the log.
///
/// It answers with an [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457)
/// problem document, `content-type: application/problem+json`:
///
/// ```json
/// {"type":"about:blank","title":"Not Found","status":404,"detail":"unknown account zed"}
/// ```
///
/// `detail` is the public message; `title` is the status's reason phrase
/// unless [`with_type`](Self::with_type) names a problem type of your own;
/// [`with_extension`](Self::with_extension) adds members.
///
/// With `?`, any `std::error::Error` converts into an `Error`:
///
/// * a [`DbError`] keeps its fitting status (`NotFound` → 404, constraint
///   violations → 409, connection lost or timeout → 503, the rest → 500),
///   with a generic message; the database's message goes to the log only;
/// * an extractor's [`Rejection`] keeps its status and message;
/// * anything else is a `500`: the client sees "internal server error",
///   the log gets the error and its sources.
///
/// A `DbError` or `Rejection` anywhere in the error's `source()` chain
/// counts, so an app error type that wraps one keeps its status.
///
/// ```
/// use crabcat_sdk::{Error, StatusCode};
///
/// fn check(amount: i64) -> Result<i64, Error> {
///     if amount <= 0 {
///         return Err(Error::unprocessable("amount must be positive"));
///     }
///     Ok(amount)
/// }
/// assert_eq!(check(-1).unwrap_err().status(), StatusCode::UNPROCESSABLE_ENTITY);
/// ```
pub struct Error {
    status: StatusCode,
    message: String,
    detail: Option<String>,
    /// Rarely set, so boxed: keeps `Result<T, Error>` small.
    problem: Option<Box<ProblemExtras>>,
}

/// The optional parts of the problem document.
#[derive(Debug, Default)]
struct ProblemExtras {
    /// `type` and `title` of a problem type of the app's own.
    kind: Option<(Cow<'static, str>, Cow<'static, str>)>,
    extensions: Map<String, Value>,
}

/// The members RFC 9457 defines; extensions may not replace them.
const STANDARD_MEMBERS: [&str; 5] = ["type", "title", "status", "detail", "instance"];

impl Error {
    /// An error with `status` whose `message` is shown to the client.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
            detail: None,
            problem: None,
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

    /// `409 Conflict`: the request clashes with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::new(StatusCode::CONFLICT, message)
    }

    /// `422 Unprocessable Entity`: well-formed input that fails validation.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Error::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// `500 Internal Server Error`: the client sees a generic message,
    /// `detail` goes to the log.
    pub fn internal(detail: impl Into<String>) -> Self {
        Error::with_detail(StatusCode::INTERNAL_SERVER_ERROR, "internal server error", detail)
    }

    /// An error with a public `message` and a `detail` for the log only.
    pub fn with_detail(status: StatusCode, message: impl Into<String>, detail: impl Into<String>) -> Self {
        Error {
            detail: Some(detail.into()),
            ..Error::new(status, message)
        }
    }

    /// Names a problem type of the app's own: a URI (`type`) and a short,
    /// fixed summary of it (`title`), instead of `about:blank` and the
    /// status's reason phrase.
    ///
    /// ```
    /// # use crabcat_sdk::Error;
    /// let error = Error::conflict("alice has 20, the transfer needs 50")
    ///     .with_type("https://example.com/problems/insufficient-funds", "Insufficient funds");
    /// ```
    pub fn with_type(mut self, uri: impl Into<Cow<'static, str>>, title: impl Into<Cow<'static, str>>) -> Self {
        self.extras().kind = Some((uri.into(), title.into()));
        self
    }

    /// Adds an extension member to the problem document, e.g. the list of
    /// every validation failure. The standard members (`type`, `title`,
    /// `status`, `detail`, `instance`) cannot be replaced: such a `name` is
    /// ignored.
    ///
    /// ```
    /// # use crabcat_sdk::Error;
    /// let problems = vec!["name is required".to_owned(), "message is required".to_owned()];
    /// let error = Error::unprocessable(problems.join("; ")).with_extension("errors", problems);
    /// ```
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        if !STANDARD_MEMBERS.contains(&name.as_str()) {
            self.extras().extensions.insert(name, value.into());
        }
        self
    }

    fn extras(&mut self) -> &mut ProblemExtras {
        self.problem.get_or_insert_with(Box::default)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message shown to the client (the problem's `detail`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Logs the detail, if there is one: server errors at `error`, the
    /// rest at `info`.
    fn log(&self) {
        let Some(detail) = &self.detail else { return };
        if self.status.is_server_error() {
            log::error!("{} {}: {detail}", self.status.as_u16(), self.message);
        } else {
            log::info!("{} {}: {detail}", self.status.as_u16(), self.message);
        }
    }

    /// The problem document.
    fn problem_body(&self) -> Vec<u8> {
        let extras = self.problem.as_deref();
        let (kind, title) = match extras.and_then(|e| e.kind.as_ref()) {
            Some((kind, title)) => (kind.as_ref(), title.as_ref()),
            None => ("about:blank", self.status.canonical_reason().unwrap_or("Error")),
        };
        let body = ProblemBody {
            kind,
            title,
            status: self.status.as_u16(),
            detail: &self.message,
            extensions: extras.map(|e| &e.extensions),
        };
        // Serialising strings and JSON values into a Vec cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// The wire form of a problem document.
#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(flatten)]
    extensions: Option<&'a Map<String, Value>>,
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
            .field("problem", &self.problem)
            .finish()
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        Error::from_std(&error)
    }
}

impl Error {
    /// Picks the status from the first [`DbError`] or [`Rejection`] in the
    /// chain of `error`, else `500`; the whole chain is the log detail.
    fn from_std(error: &(dyn StdError + 'static)) -> Self {
        let detail = chain_text(error);
        for cause in std::iter::successors(Some(error), |&e| e.source()) {
            if let Some(db) = cause.downcast_ref::<DbError>() {
                let (status, public) = db.http_status();
                return Error::with_detail(status, public, detail);
            }
            if let Some(rejection) = cause.downcast_ref::<Rejection>() {
                return Error::from_rejection(rejection, detail);
            }
            if let Some(session) = cause.downcast_ref::<crate::SessionError>()
                && session.status() == StatusCode::SERVICE_UNAVAILABLE
            {
                return Error::with_detail(session.status(), "session store unavailable", detail);
            }
        }
        Error::internal(detail)
    }

    fn from_rejection(rejection: &Rejection, detail: String) -> Self {
        let status = rejection.status();
        if status.is_server_error() {
            Error::internal(detail)
        } else {
            Error::new(status, chain_text(rejection))
        }
    }
}

/// `error: source: source's source…`
fn chain_text(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    for cause in std::iter::successors(error.source(), |&e| e.source()) {
        text.push_str(": ");
        text.push_str(&cause.to_string());
    }
    text
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log();
        let response = Response::bytes(PROBLEM_JSON, self.problem_body()).with_status(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // A lost connection or a pool timeout: try again shortly.
            response.with_header("retry-after", "1")
        } else {
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbErrorKind;

    /// The status, content type and parsed body of `error`'s response.
    fn problem(error: Error) -> (u16, String, Value) {
        let response = error.into_response();
        let content_type = response.headers()[0].1.to_string();
        let body = serde_json::from_slice(response.body()).unwrap();
        (response.status().as_u16(), content_type, body)
    }

    #[test]
    fn a_503_says_when_to_retry() {
        let response = Error::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response();
        assert!(response.headers().iter().any(|(n, v)| n == "retry-after" && v == "1"));
        let response = Error::not_found("x").into_response();
        assert!(!response.headers().iter().any(|(n, _)| n == "retry-after"));
    }

    #[test]
    fn errors_answer_with_a_problem_document() {
        let (status, content_type, body) = problem(Error::not_found("unknown account zed"));
        assert_eq!((status, content_type.as_str()), (404, "application/problem+json"));
        assert_eq!(
            body,
            serde_json::json!({"type": "about:blank", "title": "Not Found", "status": 404, "detail": "unknown account zed"})
        );
    }

    #[test]
    fn server_errors_keep_their_detail_out_of_the_body() {
        let (status, _, body) = problem(Error::internal("the disk is on fire at /var/lib/x"));
        assert_eq!(status, 500);
        assert_eq!(body["detail"], "internal server error");
        assert!(!body.to_string().contains("disk"), "{body}");
        let io = std::io::Error::other("secret path /etc/x");
        let (status, _, body) = problem(Error::from(io));
        assert_eq!(status, 500);
        assert!(!body.to_string().contains("secret"), "{body}");
    }

    #[test]
    fn problem_types_and_extensions() {
        let error = Error::unprocessable("2 problems")
            .with_type("https://example.com/p/invalid", "Invalid entry")
            .with_extension("errors", vec!["a".to_owned(), "b".to_owned()])
            .with_extension("status", 200);
        let (status, _, body) = problem(error);
        assert_eq!(status, 422);
        assert_eq!(
            body,
            serde_json::json!({
                "type": "https://example.com/p/invalid", "title": "Invalid entry", "status": 422,
                "detail": "2 problems", "errors": ["a", "b"]
            })
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("loading the account")]
    struct AppError(#[source] DbError);

    #[test]
    fn db_errors_keep_their_status_through_question_mark_and_wrappers() {
        fn fails(kind: DbErrorKind) -> Result<()> {
            Err(DbError::new(kind, "UNIQUE constraint failed: t.x"))?;
            Ok(())
        }
        let error = fails(DbErrorKind::UniqueViolation).unwrap_err();
        assert_eq!((error.status().as_u16(), error.message()), (409, "conflict"));
        assert!(
            error.to_string().contains("UNIQUE constraint"),
            "the log keeps the cause"
        );
        let (_, _, body) = problem(error);
        assert!(!body.to_string().contains("UNIQUE"), "{body}");
        let wrapped = Error::from(AppError(DbError::new(DbErrorKind::NotFound, "no row")));
        assert_eq!(wrapped.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            wrapped.to_string(),
            "loading the account: database error (NotFound): no row"
        );
    }

    #[test]
    fn rejections_keep_their_status_and_message() {
        let json_error = serde_json::from_str::<u8>("x").unwrap_err();
        let error = Error::from(Rejection::InvalidJsonSyntax(json_error));
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(
            error.message().starts_with("invalid JSON body: expected value"),
            "{error:?}"
        );
        let error = Error::from(Rejection::PathParameterCount { expected: 2, found: 1 });
        assert_eq!(
            (error.status().as_u16(), error.message()),
            (500, "internal server error")
        );
    }
}
