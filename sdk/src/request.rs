//! The request an app handler receives.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;

use crate::abi::{PART_BODY, PART_CONTEXT_PATH, PART_METHOD, PART_PATH, PART_QUERY};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::extract::{Rejection, decode_form, text};
use crate::ffi::host::{DbCall, RequestHandle};
use crate::session::{Session, SessionError};

/// One HTTP request, as the container received it.
///
/// It borrows nothing from the app: its data lives in the container and is
/// read in place (no copy), and dropping the `Request` hands it back. It
/// may be moved into spawned tasks.
///
/// Most handlers need not touch it: [extractors](crate::extract) such as
/// [`Path`](crate::Path), [`Query`](crate::Query) and [`Json`](crate::Json)
/// read it for them. Take it as a handler's last argument for headers and
/// the database ([`db`](Self::db)).
pub struct Request {
    handle: RequestHandle,
    /// The query string's pairs, percent-decoded on first use.
    query: OnceLock<Vec<(String, String)>>,
}

impl Request {
    pub(crate) fn from_handle(handle: RequestHandle) -> Self {
        Request {
            handle,
            query: OnceLock::new(),
        }
    }

    pub(crate) fn handle(&self) -> &RequestHandle {
        &self.handle
    }

    fn part_str(&self, part: u32) -> &str {
        // The host only hands out UTF-8 for these parts (they come from `&str`s).
        std::str::from_utf8(self.handle.part(part)).unwrap_or_default()
    }

    /// The method, e.g. `"GET"`.
    pub fn method(&self) -> &str {
        self.part_str(PART_METHOD)
    }

    /// The path inside the app, starting with `/` (the context path removed).
    pub fn path(&self) -> &str {
        self.part_str(PART_PATH)
    }

    /// Where the app is mounted, e.g. `/hello`; empty when mounted at `/`.
    pub fn context_path(&self) -> &str {
        self.part_str(PART_CONTEXT_PATH)
    }

    /// The raw query string, without `?`; empty if there is none.
    pub fn query_string(&self) -> &str {
        self.part_str(PART_QUERY)
    }

    /// The first value of query parameter `name`, percent-decoded.
    /// (The query string is decoded once per request, on first use.)
    pub fn query(&self, name: &str) -> Option<String> {
        let pairs = self.query_pairs();
        pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// Every query parameter as `(name, value)`, percent-decoded, in order;
    /// decoded once per request, on first use.
    pub fn query_pairs(&self) -> &[(String, String)] {
        self.query.get_or_init(|| {
            form_urlencoded::parse(self.query_string().as_bytes())
                .into_owned()
                .collect()
        })
    }

    /// The whole query string deserialised into `T`; the
    /// [`Query`](crate::Query) extractor does the same as an argument.
    ///
    /// # Errors
    /// `400 Bad Request` if it does not match `T`.
    pub fn query_as<T: DeserializeOwned>(&self) -> Result<T> {
        self.decode_query().map_err(|e| Error::from(Rejection::InvalidQuery(e)))
    }

    /// The query string's cached pairs deserialised into `T`.
    pub(crate) fn decode_query<T: DeserializeOwned>(&self) -> Result<T, serde::de::value::Error> {
        let pairs = self.query_pairs().iter();
        text::from_pairs(pairs.map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str()))))
    }

    /// Path parameter `name` from the route pattern (`/greet/{name}`),
    /// percent-decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Every path parameter, in pattern order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        (0..)
            .map_while(|i| self.handle.param_at(i))
            .filter_map(|(k, v)| Some((std::str::from_utf8(k).ok()?, std::str::from_utf8(v).ok()?)))
    }

    /// The first value of header `name` (case-insensitive), if it is
    /// present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.handle.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every header as `(name, raw value)`; names are lowercase.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        (0..)
            .map_while(|i| self.handle.header_at(i))
            .filter_map(|(k, v)| Some((std::str::from_utf8(k).ok()?, v)))
    }

    /// This request's session: the one its cookie names, or a new one
    /// (stored, with its cookie, once something is written to it). Loaded
    /// from the container's store on the first call; see [`crate::session`].
    ///
    /// # Errors
    /// [`SessionError::Unavailable`](crate::SessionError::Unavailable) if
    /// the store cannot be read, [`Off`](crate::SessionError::Off) if the
    /// container runs without sessions.
    pub async fn session(&self) -> Result<Session<'_>, SessionError> {
        Session::load(&self.handle).await
    }

    /// [`session`](Self::session) for [`blocking`](crate::blocking) handlers.
    ///
    /// # Errors
    /// As [`session`](Self::session).
    pub fn session_blocking(&self) -> Result<Session<'_>, SessionError> {
        futures_executor::block_on(self.session())
    }

    /// The app's default datasource (the first one it was granted, usually
    /// `default`). See [`crate::db`].
    pub fn db(&self) -> Db<'_> {
        Db::new(self, "")
    }

    /// Datasource `name`, which the app must have been granted in its
    /// `datasources` setting; any other gives
    /// [`DbErrorKind::PermissionDenied`](crate::db::DbErrorKind::PermissionDenied)
    /// on first use.
    pub fn datasource(&self, name: &str) -> Db<'_> {
        Db::new(self, name)
    }

    pub(crate) fn db_start(&self, op: u32, datasource: &str, tx: u64, sql: &str, params: &[u8]) -> DbCall {
        self.handle.db_start(op, datasource, tx, sql, params)
    }

    pub(crate) fn release_transaction(&self, tx: u64) {
        self.handle.release_transaction(tx);
    }

    /// The body bytes (the container has read the whole body, up to its
    /// configured size limit). Empty on a route whose handler reads the body
    /// as it arrives, with a [`BodyStream`](crate::BodyStream).
    pub fn body(&self) -> &[u8] {
        self.handle.part(PART_BODY)
    }

    /// The body as UTF-8 text.
    ///
    /// # Errors
    /// `400 Bad Request` if it is not UTF-8.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(self.body()).map_err(|_| Error::bad_request("request body is not valid UTF-8"))
    }

    /// The body parsed as JSON into `T`, whatever the content type says
    /// (the [`Json`](crate::Json) extractor checks it).
    ///
    /// # Errors
    /// `400 Bad Request` with the parser's message if it is not valid JSON
    /// for `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(self.body()).map_err(|e| Error::from(Rejection::InvalidJsonSyntax(e)))
    }

    /// The body parsed as an HTML form (`application/x-www-form-urlencoded`),
    /// whatever the content type says (the [`Form`](crate::Form) extractor
    /// checks it). Values parse as [`Query`](crate::Query) values do.
    ///
    /// # Errors
    /// `400 Bad Request` if it does not match `T`.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T> {
        decode_form(self.body()).map_err(|e| Error::bad_request(format!("invalid form body: {e}")))
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("query", &self.query_string())
            .field("body_len", &self.body().len())
            .finish()
    }
}
