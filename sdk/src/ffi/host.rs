//! Safe wrappers around the host vtable, for the rest of the SDK.

use core::ptr::{NonNull, null_mut};
use core::sync::atomic::{AtomicPtr, Ordering};
use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use crate::abi::wire::{Reply, WireError, decode_reply};
use crate::abi::{
    BodyChunk, FfiFuture, HEADER_VALUE_STATIC, HostApp, HostRequest, HostResponse, HostSocket, HostVtable, InitSink,
    MigrationSink, RawSlice, WS_BINARY, WS_TEXT, WsEvent,
};
use crate::response::Body;

/// The host vtable and app handle of this module image, set by `init`.
/// Each loaded image has its own statics, so one image serves one app.
static HOST: AtomicPtr<HostVtable> = AtomicPtr::new(null_mut());
static APP: AtomicPtr<HostApp> = AtomicPtr::new(null_mut());

/// Remembers the host for this image.
///
/// # Safety
/// `host` must point to a vtable valid for the life of the process and `app`
/// to a host app handle valid as long (both promised by [`crate::abi::InitFn`]).
pub(crate) unsafe fn install(host: &'static HostVtable, app: *const HostApp) {
    HOST.store((host as *const HostVtable).cast_mut(), Ordering::Release);
    APP.store(app.cast_mut(), Ordering::Release);
}

/// The installed vtable, if `init` ran.
pub(crate) fn vtable() -> Option<&'static HostVtable> {
    let ptr = HOST.load(Ordering::Acquire);
    // SAFETY: only `install` stores a non-null value, a vtable the host
    // keeps valid for the life of the process.
    unsafe { ptr.as_ref() }
}

fn require_vtable(what: &str) -> &'static HostVtable {
    vtable().unwrap_or_else(|| panic!("crabcat_sdk::{what} needs a running module (called before init?)"))
}

/// Borrows the bytes of a slice the host handed out.
///
/// # Safety
/// `slice` must be null or valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn bytes<'a>(slice: RawSlice) -> &'a [u8] {
    if slice.ptr.is_null() || slice.len == 0 {
        return &[];
    }
    // SAFETY: non-null and valid for `len` bytes for 'a, by the caller.
    unsafe { core::slice::from_raw_parts(slice.ptr, slice.len) }
}

/// Sends one log line to the host, if there is one.
pub(crate) fn log(level: u32, target: &str, message: &str) {
    if let Some(host) = vtable() {
        let app = APP.load(Ordering::Acquire);
        // SAFETY: `app` is the handle given to `init`, valid for the process;
        // the slices borrow live strings for the duration of the call.
        unsafe { (host.log)(app, level, RawSlice::from_str(target), RawSlice::from_str(message)) }
    }
}

/// Waits for `duration` on the host's timer.
///
/// # Panics
/// Outside a running module (before `init`).
pub fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static {
    let host = require_vtable("sleep");
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    // SAFETY: a plain call into the host; the returned future is ours.
    unsafe { (host.sleep)(millis) }
}

/// Runs `task` in the background on the host runtime. The container cancels
/// it before the app is destroyed (on undeploy, reload or shutdown), so it
/// must not be relied on to finish.
///
/// # Panics
/// Outside a running module (before `init`).
pub fn spawn<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let host = require_vtable("spawn");
    let app = APP.load(Ordering::Acquire);
    // SAFETY: `app` is the handle given to `init`; the future is moved to
    // the host, which polls and drops it through its FFI vtable.
    unsafe { (host.spawn)(app, FfiFuture::new(task)) }
}

/// Publishes `payload` to hub `topic` for this app; how many subscribers
/// it was queued for.
///
/// # Panics
/// Outside a running module (before `init`).
pub(crate) fn hub_publish(topic: &str, payload: &[u8]) -> u64 {
    let host = require_vtable("hub");
    let app = APP.load(Ordering::Acquire);
    // SAFETY: `app` is the handle given to `init`; the host copies both
    // slices before returning.
    unsafe { (host.hub_publish)(app, RawSlice::from_str(topic), RawSlice::new(payload)) }
}

/// Reports a route to the host during `init`.
pub(crate) struct InitReport {
    host: &'static HostVtable,
    sink: *mut InitSink,
}

impl InitReport {
    /// # Safety
    /// `sink` must be the one passed to the current `init` call.
    pub(crate) unsafe fn new(host: &'static HostVtable, sink: *mut InitSink) -> Self {
        InitReport { host, sink }
    }

    pub(crate) fn route(&self, method: &str, pattern: &str, flags: u32, max_body: u64) {
        // SAFETY: the sink is valid during init; slices borrow live strings.
        unsafe {
            (self.host.route)(
                self.sink,
                RawSlice::from_str(method),
                RawSlice::from_str(pattern),
                flags,
                max_body,
            )
        }
    }

    pub(crate) fn error(&self, message: &str) {
        // SAFETY: as in `route`.
        unsafe { (self.host.init_error)(self.sink, RawSlice::from_str(message)) }
    }
}

/// Reports migrations to the host before `init`.
pub(crate) struct MigrationReport {
    host: &'static HostVtable,
    sink: *mut MigrationSink,
}

impl MigrationReport {
    /// # Safety
    /// `sink` must be the one passed to the current `migrations` call.
    pub(crate) unsafe fn new(host: &'static HostVtable, sink: *mut MigrationSink) -> Self {
        MigrationReport { host, sink }
    }

    pub(crate) fn migration(&self, version: i64, description: &str, backend: &str, sql: &str) {
        // SAFETY: the sink is valid during the call; slices borrow live strings.
        unsafe {
            (self.host.migration)(
                self.sink,
                version,
                RawSlice::from_str(description),
                RawSlice::from_str(backend),
                RawSlice::from_str(sql),
            )
        }
    }
}

/// An owned host request; released to the host on drop.
pub(crate) struct RequestHandle {
    host: &'static HostVtable,
    raw: NonNull<HostRequest>,
}

// SAFETY: the host request is immutable after creation and the host's
// accessor functions are thread-safe, so it may be shared and moved.
unsafe impl Send for RequestHandle {}
// SAFETY: see `Send`.
unsafe impl Sync for RequestHandle {}

impl RequestHandle {
    /// # Safety
    /// `raw` must be a request the host handed to this module and not yet
    /// released; the handle takes ownership of it.
    pub(crate) unsafe fn from_raw(host: &'static HostVtable, raw: *mut HostRequest) -> Option<Self> {
        NonNull::new(raw).map(|raw| RequestHandle { host, raw })
    }

    pub(crate) fn part(&self, part: u32) -> &[u8] {
        // SAFETY: the request is live while `self` is; the slice stays valid
        // until release, which only `drop` does, so borrowing `self` suffices.
        unsafe { bytes((self.host.request_part)(self.raw.as_ptr(), part)) }
    }

    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        // SAFETY: as in `part`; `name` is borrowed for the call only.
        let value = unsafe { (self.host.request_header)(self.raw.as_ptr(), RawSlice::from_str(name)) };
        // SAFETY: as in `part`.
        (!value.is_null()).then(|| unsafe { bytes(value) })
    }

    /// Runs a database operation for this request and decodes the reply.
    pub(crate) async fn db_call(
        &self,
        op: u32,
        datasource: &str,
        tx: u64,
        sql: &str,
        params: &[u8],
    ) -> Result<Reply, WireError> {
        let host = self.host;
        // SAFETY: the request is live while `self` is borrowed; the host
        // copies `datasource`, `sql` and `params` before returning.
        let future = unsafe {
            (host.db)(
                self.raw.as_ptr(),
                op,
                RawSlice::from_str(datasource),
                tx,
                RawSlice::from_str(sql),
                RawSlice::new(params),
            )
        };
        let buffer = future.await;
        if buffer.ptr.is_null() {
            return Err(WireError("the container returned no reply"));
        }
        // SAFETY: a reply buffer the host handed us, valid for `len` bytes
        // until released; decoding copies, so nothing borrows it after.
        let reply = decode_reply(unsafe { core::slice::from_raw_parts(buffer.ptr, buffer.len) });
        // SAFETY: released exactly once, unchanged.
        unsafe { (host.buffer_release)(buffer) };
        reply
    }

    /// The next chunk of the request body: `Ok(None)` at its end, `Err`
    /// with the status the client should get (and why) if it cannot be read.
    pub(crate) async fn body_next(&self) -> Result<Option<Vec<u8>>, (u16, String)> {
        // SAFETY: the request is live while `self` is borrowed, and the
        // host's future holds a reference of its own.
        let chunk = unsafe { (self.host.request_body_next)(self.raw.as_ptr()) }.await;
        // SAFETY: the data is lent until the next call on this request,
        // which cannot happen before this copy (we hold `&self` until then
        // and the next call needs this one to have returned).
        unsafe {
            match chunk {
                BodyChunk::Data(data) => Ok(Some(bytes(data).to_vec())),
                BodyChunk::End => Ok(None),
                BodyChunk::Error(message) => Err(status_message(bytes(message))),
            }
        }
    }

    /// Accepts the WebSocket handshake of this request.
    pub(crate) fn ws_accept(&self, protocol: &str) -> Option<SocketHandle> {
        // SAFETY: the request is live; `protocol` is copied by the host.
        let raw = unsafe { (self.host.ws_accept)(self.raw.as_ptr(), RawSlice::from_str(protocol)) };
        NonNull::new(raw).map(|raw| SocketHandle { host: self.host, raw })
    }

    /// Loads this request's session; a `SESSION_*` code.
    pub(crate) async fn session_load(&self) -> u32 {
        // SAFETY: the request is live while `self` is borrowed, and the
        // host's future holds a reference of its own.
        unsafe { (self.host.session_load)(self.raw.as_ptr()) }.await
    }

    /// Attribute `name` of the loaded session, copied out.
    pub(crate) fn session_get(&self, name: &str) -> Option<Vec<u8>> {
        // SAFETY: the request is live; `name` is borrowed for the call.
        let buffer = unsafe { (self.host.session_get)(self.raw.as_ptr(), RawSlice::from_str(name)) };
        if buffer.ptr.is_null() {
            return None;
        }
        // SAFETY: a buffer the host handed us, valid for `len` bytes until
        // released; copied before the release.
        let value = unsafe { core::slice::from_raw_parts(buffer.ptr, buffer.len) }.to_vec();
        // SAFETY: released exactly once, unchanged.
        unsafe { (self.host.buffer_release)(buffer) };
        Some(value)
    }

    /// Sets (`Some`) or removes (`None`) attribute `name`; a `SESSION_*` code.
    pub(crate) fn session_set(&self, name: &str, value: Option<&[u8]>) -> u32 {
        let value = value.map_or(RawSlice::NULL, RawSlice::new);
        // SAFETY: the request is live; the host copies both slices.
        unsafe { (self.host.session_set)(self.raw.as_ptr(), RawSlice::from_str(name), value) }
    }

    /// Renews (`true`) or invalidates the loaded session; a `SESSION_*` code.
    pub(crate) fn session_end(&self, renew: bool) -> u32 {
        let call = if renew {
            self.host.session_renew
        } else {
            self.host.session_invalidate
        };
        // SAFETY: the request is live; the call does not block.
        unsafe { call(self.raw.as_ptr()) }
    }

    /// Rolls back transaction `tx` if still open (a dropped transaction).
    pub(crate) fn release_transaction(&self, tx: u64) {
        // SAFETY: the request is live; the call does not block.
        unsafe { (self.host.tx_release)(self.raw.as_ptr(), tx) }
    }

    pub(crate) fn header_at(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.pair_at(self.host.request_header_at, index)
    }

    pub(crate) fn param_at(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.pair_at(self.host.request_param_at, index)
    }

    fn pair_at(
        &self,
        getter: unsafe extern "C" fn(*const HostRequest, usize, *mut RawSlice, *mut RawSlice) -> bool,
        index: usize,
    ) -> Option<(&[u8], &[u8])> {
        let (mut name, mut value) = (RawSlice::NULL, RawSlice::NULL);
        // SAFETY: the request is live; the out-pointers are valid locals.
        let found = unsafe { getter(self.raw.as_ptr(), index, &mut name, &mut value) };
        // SAFETY: as in `part`.
        found.then(|| unsafe { (bytes(name), bytes(value)) })
    }
}

impl Drop for RequestHandle {
    fn drop(&mut self) {
        // SAFETY: we own the request and release it exactly once, here.
        unsafe { (self.host.request_release)(self.raw.as_ptr()) }
    }
}

/// Splits a host error message that starts with an HTTP status ("413 …").
fn status_message(message: &[u8]) -> (u16, String) {
    let message = String::from_utf8_lossy(message);
    match message.split_once(' ').map(|(code, rest)| (code.parse::<u16>(), rest)) {
        Some((Ok(code), rest)) if (400..600).contains(&code) => (code, rest.to_owned()),
        _ => (400, message.into_owned()),
    }
}

/// An owned WebSocket connection; released to the host (closing it) on drop.
pub(crate) struct SocketHandle {
    host: &'static HostVtable,
    raw: NonNull<HostSocket>,
}

// SAFETY: the host's socket functions are thread-safe; `recv` takes
// `&mut self`, so one call at a time, as the contract asks.
unsafe impl Send for SocketHandle {}
// SAFETY: see `Send`; the `&self` functions may run concurrently.
unsafe impl Sync for SocketHandle {}

/// What [`SocketHandle::recv`] copied out of a [`WsEvent`].
pub(crate) enum Received {
    Text(String),
    Binary(Vec<u8>),
    Hub { topic: String, payload: Vec<u8> },
    Closed { code: u16, reason: String },
}

impl SocketHandle {
    pub(crate) async fn recv(&mut self) -> Received {
        // SAFETY: the socket is live while `self` is; the host's future
        // holds a reference of its own.
        let event = unsafe { (self.host.ws_recv)(self.raw.as_ptr()) }.await;
        let text = |s| String::from_utf8_lossy(s).into_owned();
        // SAFETY: lent until the next `ws_recv`, which needs `&mut self`
        // again: the copies below are done before it can happen.
        unsafe {
            match event {
                WsEvent::Text(data) => Received::Text(text(bytes(data))),
                WsEvent::Binary(data) => Received::Binary(bytes(data).to_vec()),
                WsEvent::Hub { topic, payload } => Received::Hub {
                    topic: text(bytes(topic)),
                    payload: bytes(payload).to_vec(),
                },
                WsEvent::Closed { code, reason } => Received::Closed {
                    code,
                    reason: text(bytes(reason)),
                },
            }
        }
    }

    /// Queues a message; `false` if the connection is closed.
    pub(crate) fn send(&self, binary: bool, payload: &[u8]) -> FfiFuture<bool> {
        let kind = if binary { WS_BINARY } else { WS_TEXT };
        // SAFETY: the socket is live; the payload is copied before the call
        // returns, and the future holds a reference of the host's own.
        unsafe { (self.host.ws_send)(self.raw.as_ptr(), kind, RawSlice::new(payload)) }
    }

    pub(crate) fn close(&self, code: u16, reason: &str) {
        // SAFETY: the socket is live; the reason is copied.
        unsafe { (self.host.ws_close)(self.raw.as_ptr(), code, RawSlice::from_str(reason)) }
    }

    pub(crate) fn subscribe(&self, topic: &str, flags: u32) -> bool {
        // SAFETY: the socket is live; the topic is copied.
        unsafe { (self.host.hub_subscribe)(self.raw.as_ptr(), RawSlice::from_str(topic), flags) }
    }

    pub(crate) fn unsubscribe(&self, topic: &str) {
        // SAFETY: the socket is live; the topic is copied.
        unsafe { (self.host.hub_unsubscribe)(self.raw.as_ptr(), RawSlice::from_str(topic)) }
    }
}

impl Drop for SocketHandle {
    fn drop(&mut self) {
        // SAFETY: we own the socket and release it exactly once, here.
        unsafe { (self.host.ws_release)(self.raw.as_ptr()) }
    }
}

/// The host's response sink for one request.
#[doc(hidden)]
pub struct ResponseSink {
    host: &'static HostVtable,
    raw: *mut HostResponse,
}

// SAFETY: the sink is only written by the one future that owns this value;
// the host does not touch it until that future completes or is dropped.
unsafe impl Send for ResponseSink {}

impl ResponseSink {
    /// # Safety
    /// `raw` must be the sink of the current request, valid until the
    /// service future completes or is dropped.
    pub(crate) unsafe fn new(host: &'static HostVtable, raw: *mut HostResponse) -> Self {
        ResponseSink { host, raw }
    }

    /// Writes the whole response; headers that are not valid HTTP are
    /// dropped and logged.
    pub(crate) fn write(self, response: crate::Response) {
        let (status, headers, body) = response.into_parts();
        // SAFETY: the sink is valid (see `new`); slices borrow live data.
        unsafe {
            (self.host.response_status)(self.raw, status.as_u16());
            for (name, value) in &headers {
                // A borrowed value is `'static`: the host need not copy it.
                let flags = match value {
                    Cow::Borrowed(_) => HEADER_VALUE_STATIC,
                    Cow::Owned(_) => 0,
                };
                let ok =
                    (self.host.response_header)(self.raw, RawSlice::from_str(name), RawSlice::from_str(value), flags);
                if !ok {
                    log(
                        crate::abi::LOG_WARN,
                        "crabcat_sdk",
                        &format!("dropped invalid response header {name:?}"),
                    );
                }
            }
            match body {
                Body::Full(body) if body.is_empty() => {}
                Body::Full(body) => (self.host.response_body)(self.raw, RawSlice::new(&body)),
                Body::Stream(stream) => (self.host.response_stream)(self.raw, stream),
            }
        }
    }
}
