//! The host's services, lent to a module as a table of functions.

#[cfg(doc)] // for the doc links
use super::{
    BODY_STATIC, HEADER_VALUE_STATIC, HUB_FORWARD, InitFn, MigrationsFn, ROUTE_STREAM_BODY, ROUTE_WEBSOCKET, wire,
};
use super::{
    BodyChunk, BufferHandle, FfiBodyStream, FfiFuture, HostApp, HostRequest, HostResponse, HostSocket, InitSink,
    MigrationSink, RawSlice, WsEvent,
};

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
    /// Appends bytes to the response body. `flags`: [`BODY_STATIC`] (the
    /// host keeps a reference) or 0 (the host copies them).
    pub response_body: unsafe extern "C" fn(response: *mut HostResponse, bytes: RawSlice, flags: u32),
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
    /// this returns, and nothing runs until the future is first polled (the
    /// SDK calls this when a query is fetched, not when it is awaited). The
    /// future yields a reply buffer the module owns.
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
