//! Responses, and the conversion of handler results into them.

use std::borrow::Cow;

use std::fmt::Display;

use futures_util::Stream;
use http::StatusCode;
use serde::Serialize;

use crate::error::Error;
use crate::ffi::stream::FfiBodyStream;

/// Response headers: names and values, borrowed when `'static`.
pub type Headers = Vec<(Cow<'static, str>, Cow<'static, str>)>;

/// An HTTP response built by a handler.
#[derive(Debug)]
pub struct Response {
    status: StatusCode,
    headers: Headers,
    body: Body,
}

/// A response body: all of it, or produced over time.
pub(crate) enum Body {
    /// Borrowed only when `'static`: the container then keeps a reference.
    Full(Cow<'static, [u8]>),
    Stream(FfiBodyStream),
}

/// What a whole response body can be made of, as axum's `Body` converts:
/// owned bytes (`Vec<u8>`, `String`) are handed over, and `'static` ones
/// (literals) are not copied at all, by the module or by the container.
/// Borrowed data that is not `'static` has to be made owned first
/// (`.to_vec()`, `.to_owned()`).
pub trait IntoBody {
    /// The bytes, borrowed only when `'static`.
    fn into_body(self) -> Cow<'static, [u8]>;
}

impl IntoBody for Vec<u8> {
    fn into_body(self) -> Cow<'static, [u8]> {
        Cow::Owned(self)
    }
}

impl IntoBody for String {
    fn into_body(self) -> Cow<'static, [u8]> {
        Cow::Owned(self.into_bytes())
    }
}

impl IntoBody for &'static [u8] {
    fn into_body(self) -> Cow<'static, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<const N: usize> IntoBody for &'static [u8; N] {
    fn into_body(self) -> Cow<'static, [u8]> {
        Cow::Borrowed(self)
    }
}

impl IntoBody for &'static str {
    fn into_body(self) -> Cow<'static, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl IntoBody for Cow<'static, [u8]> {
    fn into_body(self) -> Cow<'static, [u8]> {
        self
    }
}

impl IntoBody for Cow<'static, str> {
    fn into_body(self) -> Cow<'static, [u8]> {
        match self {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(bytes) => write!(f, "Full({} bytes)", bytes.len()),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: StatusCode) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Full(Cow::Borrowed(&[])),
        }
    }

    /// `200 OK` with a body produced over time: the container sends each
    /// chunk as the stream yields it (chunked), pulling the next only when
    /// the client has taken the last, so a slow client slows the stream
    /// instead of filling memory. An `Err` item cuts the body off (the
    /// client sees an incomplete response) and is logged.
    ///
    /// If the client goes away, or the app is reloaded or stopped, the
    /// stream is dropped: put clean-up in `Drop`, not after the last item.
    /// The request timeout does not apply to the body, only to the handler
    /// that returns it.
    ///
    /// ```
    /// use crabcat_sdk::prelude::*;
    /// use futures_util::stream;
    ///
    /// async fn numbers() -> Response {
    ///     let lines = stream::iter(0..1000).map(|n| Ok::<_, Error>(format!("{n}\n")));
    ///     Response::stream("text/plain; charset=utf-8", lines)
    /// }
    /// # use futures_util::StreamExt as _;
    /// ```
    pub fn stream<S, T, E>(content_type: impl Into<Cow<'static, str>>, stream: S) -> Self
    where
        S: Stream<Item = Result<T, E>> + Send + 'static,
        T: AsRef<[u8]> + Send + 'static,
        E: Display,
    {
        Response {
            status: StatusCode::OK,
            headers: vec![("content-type".into(), content_type.into())],
            body: Body::Stream(FfiBodyStream::new(stream)),
        }
    }

    /// `200 OK` with a body and its content type. A `'static` body (a
    /// literal) is not copied.
    pub fn bytes(content_type: impl Into<Cow<'static, str>>, body: impl IntoBody) -> Self {
        // Room for one more header (a `server`, a `cache-control`) without
        // growing: `Vec`'s first growth would make room for four.
        let mut headers = Vec::with_capacity(2);
        headers.push(("content-type".into(), content_type.into()));
        Response {
            status: StatusCode::OK,
            headers,
            body: Body::Full(body.into_body()),
        }
    }

    /// `200 OK`, `text/plain; charset=utf-8`. A `&'static str` is not
    /// copied; pass a `String` for anything else.
    pub fn text(body: impl Into<Cow<'static, str>>) -> Self {
        Response::bytes("text/plain; charset=utf-8", body.into())
    }

    /// `200 OK`, `text/html; charset=utf-8`. Escape user data with
    /// [`html_escape`](crate::html_escape). A `&'static str` is not copied.
    pub fn html(body: impl Into<Cow<'static, str>>) -> Self {
        Response::bytes("text/html; charset=utf-8", body.into())
    }

    /// `200 OK`, `application/json`. If `value` cannot be serialised the
    /// response is a `500` (and the reason is logged).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response::bytes("application/json", body),
            Err(e) => Error::internal(format!("cannot serialise JSON response: {e}")).into_response(),
        }
    }

    /// `303 See Other` to `location`: the usual answer to a form `POST`.
    pub fn redirect(location: impl Into<Cow<'static, str>>) -> Self {
        Response::new(StatusCode::SEE_OTHER).with_header("location", location)
    }

    /// `308 Permanent Redirect` to `location`.
    pub fn redirect_permanent(location: impl Into<Cow<'static, str>>) -> Self {
        Response::new(StatusCode::PERMANENT_REDIRECT).with_header("location", location)
    }

    /// A plain-text error page: `status` and `message`. (An [`Error`]
    /// answers with a problem document instead.)
    pub fn error(status: StatusCode, message: &str) -> Self {
        Response::text(format!("{message}\n")).with_status(status)
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a header (headers that are not valid HTTP are dropped by the
    /// container, with a warning in the log). `&'static str` names and
    /// values are not copied; pass a `String` for anything else.
    pub fn with_header(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body. A `'static` body (a literal) is not copied.
    pub fn with_body(mut self, body: impl IntoBody) -> Self {
        self.body = Body::Full(body.into_body());
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers, in the order they were added.
    pub fn headers(&self) -> &[(Cow<'static, str>, Cow<'static, str>)] {
        &self.headers
    }

    /// The body; empty for a [streamed](Self::stream) one.
    pub fn body(&self) -> &[u8] {
        match &self.body {
            Body::Full(bytes) => bytes.as_ref(),
            Body::Stream(_) => &[],
        }
    }

    /// Whether the body is [streamed](Self::stream).
    pub fn is_streamed(&self) -> bool {
        matches!(self.body, Body::Stream(_))
    }

    pub(crate) fn into_parts(self) -> (StatusCode, Headers, Body) {
        (self.status, self.headers, self.body)
    }
}

/// Converts a handler's return value into a [`Response`], like axum's trait
/// of the same name.
pub trait IntoResponse {
    /// Does the conversion.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

/// `200 OK` with an empty body.
impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(StatusCode::OK)
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        Response::new(self)
    }
}

/// What an extractor that cannot fail "rejects" with.
impl IntoResponse for std::convert::Infallible {
    fn into_response(self) -> Response {
        match self {}
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        self.1.into_response().with_status(self.0)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(v) => v.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

/// A JSON body: returned from a handler, `Json(value)` serialises `value`
/// (`200`, `application/json`); as a handler argument, it reads a JSON
/// request body (see [`FromRequestRef`](crate::FromRequestRef) for the rules).
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        Response::json(&self.0)
    }
}

/// An HTML response body.
#[derive(Debug, Clone)]
pub struct Html<T>(pub T);

impl<T: Into<Cow<'static, str>>> IntoResponse for Html<T> {
    fn into_response(self) -> Response {
        Response::html(self.0)
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` for use in HTML text and attributes.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escape_escapes_markup() {
        assert_eq!(
            html_escape(r#"<a href="x">O'Neil & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#x27;Neil &amp; co&lt;/a&gt;"
        );
    }

    #[test]
    fn result_errors_become_their_status() {
        let r: Result<Response, Error> = Err(Error::not_found("no such entry"));
        let resp = r.into_response();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(body["detail"], "no such entry");
    }

    #[test]
    fn json_sets_content_type() {
        let resp = Json(serde_json::json!({"a": 1})).into_response();
        assert_eq!(resp.headers(), &[("content-type".into(), "application/json".into())]);
        assert_eq!(resp.body(), br#"{"a":1}"#);
    }
}
