//! The request an app handler receives.

use serde::de::DeserializeOwned;

use crate::abi::wire::{Reply, WireError};
use crate::abi::{PART_BODY, PART_CONTEXT_PATH, PART_METHOD, PART_PATH, PART_QUERY};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ffi::host::RequestHandle;

/// One HTTP request, as the container received it.
///
/// It borrows nothing from the app: its data lives in the container and is
/// read in place (no copy), and dropping the `Request` hands it back. It
/// may be moved into spawned tasks.
pub struct Request {
    handle: RequestHandle,
}

impl Request {
    pub(crate) fn from_handle(handle: RequestHandle) -> Self {
        Request { handle }
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
    pub fn query(&self, name: &str) -> Option<String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(self.query_string()).ok()?;
        pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The whole query string deserialised into `T` (like axum's `Query`).
    ///
    /// # Errors
    /// `400 Bad Request` if it does not match `T`.
    pub fn query_as<T: DeserializeOwned>(&self) -> Result<T> {
        serde_urlencoded::from_str(self.query_string())
            .map_err(|e| Error::bad_request(format!("invalid query string: {e}")))
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

    pub(crate) async fn db_call(
        &self,
        op: u32,
        datasource: &str,
        tx: u64,
        sql: &str,
        params: &[u8],
    ) -> Result<Reply, WireError> {
        self.handle.db_call(op, datasource, tx, sql, params).await
    }

    pub(crate) fn release_transaction(&self, tx: u64) {
        self.handle.release_transaction(tx);
    }

    /// The body bytes (the container has read the whole body, up to its
    /// configured size limit).
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

    /// The body parsed as JSON into `T`.
    ///
    /// # Errors
    /// `400 Bad Request` with the parser's message if it is not valid JSON
    /// for `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(self.body()).map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
    }

    /// The body parsed as an HTML form (`application/x-www-form-urlencoded`).
    ///
    /// # Errors
    /// `400 Bad Request` if it does not match `T`.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T> {
        serde_urlencoded::from_bytes(self.body()).map_err(|e| Error::bad_request(format!("invalid form body: {e}")))
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
