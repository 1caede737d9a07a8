//! The module ABI: the `#[repr(C)]` contract between the container and a module.
//!
//! Both sides compile against these definitions; nothing else crosses the
//! boundary. The rules, measured in `docs/src/abi.md` ("Measured facts"):
//!
//! * A module exports one symbol, [`ENTRY_SYMBOL`], a function that does no
//!   work and returns a pointer to a `static` [`ModuleDescriptor`].
//! * The container checks, in order, [`MAGIC`], [`ABI_MAJOR`],
//!   [`LAYOUT_HASH`], the struct sizes and [`FLAG_PANIC_UNWIND`] before it
//!   calls any function pointer.
//! * [`LAYOUT_HASH`] covers every field of every struct, so any change to
//!   the contract, even an appended field, makes the container refuse
//!   modules built before it: rebuild them. Once released, reordering,
//!   removing or retyping a field also needs a new major version and a new
//!   symbol name; before the first release (0.x) version 1 may still change,
//!   and the layout hash alone refuses modules built before a change. The size
//!   fields and [`ABI_MINOR`] are there so that a later container can accept
//!   older modules whose structs are a prefix of its own; this one does not.
//! * Memory is never freed on the other side of the boundary from where it
//!   was allocated. Requests are host memory that the module releases through
//!   [`HostVtable::request_release`]; responses, routes and errors are written
//!   by the module into host-owned sinks through the vtable. The one
//!   exception is data that is never freed at all: a header value marked
//!   [`HEADER_VALUE_STATIC`] is `'static` in the module, and the host keeps
//!   a reference to it instead of a copy (module images are never unloaded).
//!
//! App authors never touch this module: the SDK's safe API and
//! [`export_app!`](crate::export_app) hide it.

use core::ffi::c_void;

mod layout;

pub mod wire;

// The future's shapes are part of the contract; their implementation is
// unsafe code, so it lives with the rest in `ffi`.
pub use crate::ffi::future::{FfiContext, FfiFuture, FfiPoll, FfiWaker, FfiWakerVtable};
pub use crate::ffi::stream::{Chunk, FfiBodyStream};
#[doc(hidden)]
pub use layout::layout_field;
pub use layout::{CONTRACT, FieldLayout, LAYOUT_HASH, TypeLayout, layout_hash};

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

/// A borrowed run of bytes (often UTF-8).
///
/// Ownership: never owns. Who hands one out says how long it stays valid; a
/// `null` pointer means "absent" where a function documents it, and is
/// otherwise only allowed with `len == 0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawSlice {
    /// First byte, or null.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl RawSlice {
    /// The "absent" value: a null pointer and no bytes.
    pub const NULL: RawSlice = RawSlice {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// Borrows `bytes`; valid as long as they are.
    pub const fn new(bytes: &[u8]) -> Self {
        RawSlice {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// Borrows a string; valid as long as it is.
    pub const fn from_str(s: &str) -> Self {
        Self::new(s.as_bytes())
    }

    /// `true` for the "absent" value.
    pub fn is_null(&self) -> bool {
        self.ptr.is_null()
    }
}

/// Opaque host object describing one deployed app instance. Valid for the
/// whole life of the process (the host never frees it).
#[repr(C)]
pub struct HostApp {
    _private: [u8; 0],
}

/// Opaque host object holding one HTTP request. Allocated by the host and
/// handed to the module by [`ServiceFn`]; the module owns it and must give it
/// back exactly once with [`HostVtable::request_release`].
#[repr(C)]
pub struct HostRequest {
    _private: [u8; 0],
}

/// Opaque host object for one accepted WebSocket connection. Made by
/// [`HostVtable::ws_accept`]; the module owns it and gives it back exactly
/// once with [`HostVtable::ws_release`] (which closes the connection if it
/// is still open).
#[repr(C)]
pub struct HostSocket {
    _private: [u8; 0],
}

/// One step of a body that crosses the boundary as it is produced: the
/// response body a module streams ([`FfiBodyStream`]) and the request body
/// it reads ([`HostVtable::request_body_next`]).
#[repr(C, u8)]
#[derive(Clone, Copy, Debug)]
pub enum BodyChunk {
    /// More bytes. Lent by the side that produced them until its next call
    /// (the next poll, the next `request_body_next`) or the release of the
    /// object; the receiver copies what it keeps.
    Data(RawSlice),
    /// The body is complete.
    End,
    /// The body cannot be completed; the message says why (lent as `Data`).
    /// A response ends abruptly (the client sees a cut-off body), a request
    /// body reader reports an error.
    Error(RawSlice),
}

/// What [`HostVtable::ws_recv`] yields. Slices are lent by the host until
/// the next `ws_recv` on the socket or its release.
#[repr(C, u8)]
#[derive(Clone, Copy, Debug)]
pub enum WsEvent {
    /// A complete text message (valid UTF-8: the host checked it).
    Text(RawSlice),
    /// A complete binary message.
    Binary(RawSlice),
    /// A message published to a hub topic this socket subscribed to.
    Hub {
        /// The topic it was published to.
        topic: RawSlice,
        /// What was published.
        payload: RawSlice,
    },
    /// The connection is closed (by the client, the host or the module):
    /// the close code (1005 when the client sent none) and reason. Every
    /// later `ws_recv` yields it again.
    Closed {
        /// The WebSocket close code.
        code: u16,
        /// The close reason (may be empty).
        reason: RawSlice,
    },
}

/// Opaque host object the module writes its response into. Owned by the
/// host; valid until the service future completes or is dropped.
#[repr(C)]
pub struct HostResponse {
    _private: [u8; 0],
}

/// Opaque host object collecting what `init` reports: routes and an error
/// message. Owned by the host; valid only during the `init` call.
#[repr(C)]
pub struct InitSink {
    _private: [u8; 0],
}

/// Opaque host object collecting a module's migrations. Owned by the host;
/// valid only during the [`MigrationsFn`] call.
#[repr(C)]
pub struct MigrationSink {
    _private: [u8; 0],
}

/// A database reply (see [`wire`]): `len` bytes at `ptr`, allocated by the
/// host. The module reads them and gives the whole handle back exactly once
/// with [`HostVtable::buffer_release`].
#[repr(C)]
pub struct BufferHandle {
    /// The bytes, or null if the host could not even start the operation.
    pub ptr: *mut u8,
    /// How many bytes are valid.
    pub len: usize,
    /// The host's own bookkeeping; the module passes it back unchanged.
    pub capacity: usize,
}

/// Reports the module's migrations, each with [`HostVtable::migration`], in
/// order. Called on a blocking thread before `init`; does nothing else.
pub type MigrationsFn = unsafe extern "C" fn(host: *const HostVtable, sink: *mut MigrationSink);

/// Creates the app instance.
///
/// Called once per instance on a blocking thread. `config` is a JSON
/// document (`{"name", "context_path", "config", "max_log_level"}`) valid
/// only during the call. On success the module has registered its routes with
/// [`HostVtable::route`] and returns a non-null instance pointer, owned by the
/// module and given back in [`DestroyFn`]. On failure it reports the reason
/// with [`HostVtable::init_error`] and returns null.
pub type InitFn = unsafe extern "C" fn(
    host: *const HostVtable,
    app: *const HostApp,
    config: RawSlice,
    sink: *mut InitSink,
) -> *mut c_void;

/// Starts one request on an async route and returns the future computing it.
///
/// `instance` stays valid until the future is dropped; `request` becomes
/// the module's (see [`HostRequest`]); `response` is valid until the future
/// completes or is dropped. The future yields one of the `SERVICE_*` codes.
pub type ServiceFn = unsafe extern "C" fn(
    instance: *const c_void,
    route: u32,
    request: *mut HostRequest,
    response: *mut HostResponse,
) -> FfiFuture<u32>;

/// Runs one request on a blocking route, on a host blocking thread. Same
/// ownership as [`ServiceFn`]; returns a `SERVICE_*` code.
pub type ServiceBlockingFn = unsafe extern "C" fn(
    instance: *const c_void,
    route: u32,
    request: *mut HostRequest,
    response: *mut HostResponse,
) -> u32;

/// Destroys the instance. Called exactly once per successful [`InitFn`], on
/// a blocking thread, after every request on it has finished.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// The part of the descriptor that never changes across ABI versions: the
/// container reads it, and nothing else, before deciding to trust a module.
/// All slices point to `'static` data in the module.
#[repr(C)]
pub struct ModuleHeader {
    /// Always [`MAGIC`].
    pub magic: u64,
    /// The module's [`ABI_MAJOR`].
    pub abi_major: u32,
    /// The module's [`ABI_MINOR`].
    pub abi_minor: u32,
    /// `size_of::<ModuleHeader>()` in the module.
    pub header_size: u32,
    /// `size_of::<ModuleDescriptor>()` in the module.
    pub descriptor_size: u32,
    /// The module's [`LAYOUT_HASH`].
    pub layout_hash: u64,
    /// `FLAG_*` bits.
    pub flags: u64,
    /// The crate name of the module.
    pub name: RawSlice,
    /// The crate version of the module.
    pub version: RawSlice,
    /// The version of `crabcat-sdk` it was built with.
    pub sdk_version: RawSlice,
    /// `rustc --version` of the compiler that built the SDK.
    pub rustc_version: RawSlice,
}

/// What [`ENTRY_SYMBOL`] returns a pointer to: a `static` in the module,
/// valid for as long as the library stays loaded (the host never unloads).
#[repr(C)]
pub struct ModuleDescriptor {
    /// Checked before anything else is touched.
    pub header: ModuleHeader,
    /// See [`InitFn`].
    pub init: InitFn,
    /// See [`ServiceFn`].
    pub service: ServiceFn,
    /// See [`ServiceBlockingFn`].
    pub service_blocking: ServiceBlockingFn,
    /// See [`DestroyFn`].
    pub destroy: DestroyFn,
    /// See [`MigrationsFn`].
    pub migrations: MigrationsFn,
}

/// The signature of [`ENTRY_SYMBOL`].
pub type EntryFn = extern "C" fn() -> *const ModuleDescriptor;

/// Host services, passed to [`InitFn`]. A host `static`: valid for the life
/// of the process. No function here unwinds. Pointers passed in must be the
/// ones the host handed out and still be valid.
#[repr(C)]
pub struct HostVtable {
    /// `size_of::<HostVtable>()` in the host, for append-only growth.
    pub size: usize,
    /// Logs `message` for `app` at a `LOG_*` level; `target` names the
    /// module path that logged (may be empty).
    pub log: unsafe extern "C" fn(app: *const HostApp, level: u32, target: RawSlice, message: RawSlice),
    /// Gives a request back to the host. Exactly once per request; the
    /// request and every slice read from it are invalid afterwards.
    pub request_release: unsafe extern "C" fn(request: *mut HostRequest),
    /// One `PART_*` of the request; valid until the request is released.
    pub request_part: unsafe extern "C" fn(request: *const HostRequest, part: u32) -> RawSlice,
    /// The first value of header `name` (ASCII case-insensitive), or
    /// [`RawSlice::NULL`] if absent; valid until the request is released.
    pub request_header: unsafe extern "C" fn(request: *const HostRequest, name: RawSlice) -> RawSlice,
    /// Header number `index` into `name` and `value`; `false` past the end.
    pub request_header_at: unsafe extern "C" fn(
        request: *const HostRequest,
        index: usize,
        name: *mut RawSlice,
        value: *mut RawSlice,
    ) -> bool,
    /// Path parameter number `index` (percent-decoded) into `name` and
    /// `value`; `false` past the end.
    pub request_param_at: unsafe extern "C" fn(
        request: *const HostRequest,
        index: usize,
        name: *mut RawSlice,
        value: *mut RawSlice,
    ) -> bool,
    /// Sets the response status code.
    pub response_status: unsafe extern "C" fn(response: *mut HostResponse, status: u16),
    /// Appends a response header; `false` (and nothing added) if the name or
    /// value is not valid HTTP. `flags`: [`HEADER_VALUE_STATIC`] or 0.
    pub response_header:
        unsafe extern "C" fn(response: *mut HostResponse, name: RawSlice, value: RawSlice, flags: u32) -> bool,
    /// Appends bytes to the response body (the host copies them).
    pub response_body: unsafe extern "C" fn(response: *mut HostResponse, bytes: RawSlice),
    /// During `init`: registers route number `n` (the n-th call, from 0) for
    /// `method` and `pattern`, with `ROUTE_*` flags and the largest request
    /// body it accepts (`max_body`, 0: the container's `server.max_body_bytes`).
    pub route:
        unsafe extern "C" fn(sink: *mut InitSink, method: RawSlice, pattern: RawSlice, flags: u32, max_body: u64),
    /// During `init`: reports why it failed.
    pub init_error: unsafe extern "C" fn(sink: *mut InitSink, message: RawSlice),
    /// A future that completes after `millis` milliseconds, driven by the
    /// host's timer. Owned by the module once returned.
    pub sleep: unsafe extern "C" fn(millis: u64) -> FfiFuture<()>,
    /// Runs `task` on the host runtime, tracked for `app`: the host cancels
    /// (drops) it before the app's `destroy`.
    pub spawn: unsafe extern "C" fn(app: *const HostApp, task: FfiFuture<()>),
    /// Runs database operation `op` (`DB_*`) for the app serving `request`,
    /// on `datasource` (empty: the app's default), inside transaction `tx`
    /// (0: none; then the route's managed transaction if it has one, else
    /// the pool). `sql` and `params` ([`wire`] values) are copied before
    /// this returns. The future yields a reply buffer the module owns.
    pub db: unsafe extern "C" fn(
        request: *const HostRequest,
        op: u32,
        datasource: RawSlice,
        tx: u64,
        sql: RawSlice,
        params: RawSlice,
    ) -> FfiFuture<BufferHandle>,
    /// Gives a reply buffer back to the host.
    pub buffer_release: unsafe extern "C" fn(buffer: BufferHandle),
    /// Rolls back transaction `tx` of `request` if it is still open (the
    /// module dropped it without committing). Does not block.
    pub tx_release: unsafe extern "C" fn(request: *const HostRequest, tx: u64),
    /// During [`MigrationsFn`]: reports migration `version` with its
    /// description and SQL (all copied). `backend` is empty for the SQL
    /// every backend runs, or `postgres` / `sqlite` / `mysql` for a variant that
    /// backend runs instead; one call per variant.
    pub migration: unsafe extern "C" fn(
        sink: *mut MigrationSink,
        version: i64,
        description: RawSlice,
        backend: RawSlice,
        sql: RawSlice,
    ),
    /// Makes `stream` the response body (the status and headers set so far
    /// are the head). The host owns the stream from then on, and drops it
    /// through its own `drop` (a null `response` drops it at once).
    pub response_stream: unsafe extern "C" fn(response: *mut HostResponse, stream: FfiBodyStream),
    /// On a [`ROUTE_STREAM_BODY`] route: the next chunk of the request body.
    /// The data is lent until the next call or the release of the request.
    /// A body larger than the route's limit ends with `Error`. The future
    /// keeps the request alive; one call at a time.
    pub request_body_next: unsafe extern "C" fn(request: *const HostRequest) -> FfiFuture<BodyChunk>,
    /// On a [`ROUTE_WEBSOCKET`] route: accepts the connection (the host
    /// answers `101 Switching Protocols`, with `protocol` as the chosen
    /// subprotocol unless empty, once the service future yields or
    /// completes) and returns the socket. Null if this request is not one
    /// that can be accepted (not a WebSocket route, or already accepted).
    pub ws_accept: unsafe extern "C" fn(request: *const HostRequest, protocol: RawSlice) -> *mut HostSocket,
    /// The next event of `socket` (see [`WsEvent`]). One call at a time.
    pub ws_recv: unsafe extern "C" fn(socket: *mut HostSocket) -> FfiFuture<WsEvent>,
    /// Queues a message (`WS_TEXT` or `WS_BINARY`; copied before this
    /// returns). The future yields `true` once it is queued: it waits while
    /// the connection's outbox is full (a slow client slows its sender), and
    /// yields `false` if the connection is closed.
    pub ws_send: unsafe extern "C" fn(socket: *mut HostSocket, kind: u32, payload: RawSlice) -> FfiFuture<bool>,
    /// Closes the connection with `code` and `reason` (copied). Does not block.
    pub ws_close: unsafe extern "C" fn(socket: *mut HostSocket, code: u16, reason: RawSlice),
    /// Gives a socket back to the host, closing the connection (code 1000)
    /// if it is still open. Exactly once per socket.
    pub ws_release: unsafe extern "C" fn(socket: *mut HostSocket),
    /// Subscribes `socket` to hub `topic` (copied): messages published to
    /// it arrive as [`WsEvent::Hub`], or with [`HUB_FORWARD`] go straight
    /// to the client. `false` if the socket is closed.
    pub hub_subscribe: unsafe extern "C" fn(socket: *mut HostSocket, topic: RawSlice, flags: u32) -> bool,
    /// Ends a subscription of `socket`.
    pub hub_unsubscribe: unsafe extern "C" fn(socket: *mut HostSocket, topic: RawSlice),
    /// Publishes `payload` (copied) to the subscribers of `topic` among the
    /// app's connections, on every instance of the app; never blocks.
    /// Returns how many subscribers it was queued for.
    pub hub_publish: unsafe extern "C" fn(app: *const HostApp, topic: RawSlice, payload: RawSlice) -> u64,
    /// Loads the session of `request`: the one its cookie names, or a new,
    /// empty one (an unknown, expired or tampered cookie starts a new one).
    /// Yields a `SESSION_*` code; loading again is free. The container
    /// stores what changed, and sets the cookie, when the handler returns.
    /// The future keeps the request alive.
    pub session_load: unsafe extern "C" fn(request: *const HostRequest) -> FfiFuture<u32>,
    /// Attribute `name` of the loaded session (the bytes the module set), in
    /// a buffer the module owns; a null `ptr` if absent or not loaded.
    pub session_get: unsafe extern "C" fn(request: *const HostRequest, name: RawSlice) -> BufferHandle,
    /// Sets attribute `name` to `value` (both copied), or removes it if
    /// `value` is [`RawSlice::NULL`]. A `SESSION_*` code.
    pub session_set: unsafe extern "C" fn(request: *const HostRequest, name: RawSlice, value: RawSlice) -> u32,
    /// Gives the loaded session a new id, keeping its attributes (against
    /// session fixation: call it at login). A `SESSION_*` code.
    pub session_renew: unsafe extern "C" fn(request: *const HostRequest) -> u32,
    /// Invalidates the loaded session: it is deleted, and what is set
    /// afterwards starts a new one. A `SESSION_*` code.
    pub session_invalidate: unsafe extern "C" fn(request: *const HostRequest) -> u32,
}
