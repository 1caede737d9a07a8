//! The contract's constants: the magic, the versions, the entry symbol's
//! name, and the flags and codes the vtable's functions take and return.

#[cfg(doc)] // for the doc links
use super::{HostVtable, ModuleDescriptor, ModuleHeader, ServiceFn};

/// First field of every module header: `b"CRABCAT\0"` read as little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"CRABCAT\0");
/// Incompatible changes bump this, and the entry symbol's name with it.
pub const ABI_MAJOR: u32 = 1;
/// Compatible, append-only additions bump this.
pub const ABI_MINOR: u32 = 0;
/// The one symbol a module exports (no trailing NUL).
pub const ENTRY_SYMBOL: &str = "crabcat_module_v1";
/// Set in [`ModuleHeader::flags`] when the module was built with `panic = "unwind"`.
pub const FLAG_PANIC_UNWIND: u64 = 1;

/// [`ServiceFn`] result: the response was written to the sink.
pub const SERVICE_OK: u32 = 0;
/// [`ServiceFn`] result: the handler panicked; the sink holds nothing usable.
pub const SERVICE_PANICKED: u32 = 1;
/// [`ServiceFn`] result: the route index is not one the module registered.
pub const SERVICE_NO_ROUTE: u32 = 2;

/// [`HostVtable::route`] flag: the handler is synchronous and the host runs
/// it on its blocking thread pool through [`ModuleDescriptor::service_blocking`].
pub const ROUTE_BLOCKING: u32 = 1;

/// [`HostVtable::route`] flag: the container runs the handler inside one
/// transaction on the app's default datasource, committed when the response
/// status is below 400 and rolled back otherwise (or on a panic).
pub const ROUTE_TRANSACTIONAL: u32 = 2;

/// [`HostVtable::route`] flag: the handler reads the request body as it
/// arrives, with [`HostVtable::request_body_next`]; the host does not read
/// it first (and [`PART_BODY`] is empty).
pub const ROUTE_STREAM_BODY: u32 = 4;

/// [`HostVtable::route`] flag: a WebSocket endpoint. The host answers
/// requests that are not a WebSocket handshake (or come from an origin the
/// app does not allow) itself; the handler accepts the connection with
/// [`HostVtable::ws_accept`], or answers with a plain HTTP response.
pub const ROUTE_WEBSOCKET: u32 = 8;

/// [`HostVtable::ws_send`]: a text message (the payload is UTF-8).
pub const WS_TEXT: u32 = 0;
/// [`HostVtable::ws_send`]: a binary message.
pub const WS_BINARY: u32 = 1;

/// [`HostVtable::hub_subscribe`] flag: what is published to the topic is
/// sent to the client by the host (text if UTF-8, else binary), without
/// going through the module.
pub const HUB_FORWARD: u32 = 1;

/// [`HostVtable::response_header`] flag: the value is `'static` in the
/// module, so the host keeps a reference to it instead of a copy. Sound
/// because the host never unloads a module image (unloading a Rust cdylib
/// is not safe; see `docs/src/abi.md`): static data lives as long as the
/// process.
pub const HEADER_VALUE_STATIC: u32 = 1;

/// [`HostVtable::response_body`] flag: the bytes are `'static` in the
/// module (a literal), so the host keeps a reference to them instead of a
/// copy. Sound for the same reason as [`HEADER_VALUE_STATIC`].
pub const BODY_STATIC: u32 = 1;

/// [`HostVtable::db`] operation: run a query, reply with all rows.
pub const DB_FETCH_ALL: u32 = 0;
/// [`HostVtable::db`] operation: run a query, reply with at most one row.
pub const DB_FETCH_OPTIONAL: u32 = 1;
/// [`HostVtable::db`] operation: run a statement, reply `DONE`.
pub const DB_EXECUTE: u32 = 2;
/// [`HostVtable::db`] operation: begin a transaction, reply `TX`.
pub const DB_BEGIN: u32 = 3;
/// [`HostVtable::db`] operation: commit transaction `tx`, reply `DONE`.
pub const DB_COMMIT: u32 = 4;
/// [`HostVtable::db`] operation: roll back transaction `tx`, reply `DONE`.
pub const DB_ROLLBACK: u32 = 5;

/// [`HostVtable::session_load`] and the other session calls: done.
pub const SESSION_OK: u32 = 0;
/// The session store could not be read (the container logged why).
pub const SESSION_UNAVAILABLE: u32 = 1;
/// Sessions are turned off (`sessions.datasource` is empty).
pub const SESSION_OFF: u32 = 2;
/// [`HostVtable::session_set`]: the session would be larger than
/// `sessions.max_bytes`; nothing changed.
pub const SESSION_TOO_LARGE: u32 = 3;
/// The request's session was not loaded with [`HostVtable::session_load`].
pub const SESSION_NOT_LOADED: u32 = 4;

/// [`HostVtable::request_part`]: the HTTP method, e.g. `GET`.
pub const PART_METHOD: u32 = 0;
/// [`HostVtable::request_part`]: the path inside the app, always starting with `/`.
pub const PART_PATH: u32 = 1;
/// [`HostVtable::request_part`]: the raw query string without `?` (may be empty).
pub const PART_QUERY: u32 = 2;
/// [`HostVtable::request_part`]: the request body.
pub const PART_BODY: u32 = 3;
/// [`HostVtable::request_part`]: the app's context path, e.g. `/hello` (empty for `/`).
pub const PART_CONTEXT_PATH: u32 = 4;

/// Log levels for [`HostVtable::log`], the `log` crate's numbering.
pub const LOG_ERROR: u32 = 1;
/// See [`LOG_ERROR`].
pub const LOG_WARN: u32 = 2;
/// See [`LOG_ERROR`].
pub const LOG_INFO: u32 = 3;
/// See [`LOG_ERROR`].
pub const LOG_DEBUG: u32 = 4;
/// See [`LOG_ERROR`].
pub const LOG_TRACE: u32 = 5;
