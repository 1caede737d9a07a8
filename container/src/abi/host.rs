//! The host vtable: the services a module calls back into, and the host
//! objects behind the opaque ABI pointers. No function here may unwind.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crabcat_sdk::abi::{
    self, FfiFuture, HostVtable, LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_TRACE, LOG_WARN, PART_BODY, PART_CONTEXT_PATH,
    PART_METHOD, PART_PATH, PART_QUERY, RawSlice,
};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::load::slice;
use crate::db::RequestScope;

/// Most response headers one response may carry.
pub const MAX_RESPONSE_HEADERS: usize = 1000;
/// Most bytes (names and values) of one response's headers.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;

/// Declares a host callback: an `unsafe extern "C" fn` whose body runs
/// under `catch_unwind`, in the manner of hyper's `ffi_fn!`. A panic must
/// never leave it (unwinding out of an `extern "C"` function aborts the
/// whole process); it is logged with the callback's name and the call
/// returns `fallback`, which tells the module the call failed. The body is
/// a closure: `return` in it returns from the callback.
macro_rules! host_fn {
    (
        $(#[$meta:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $fallback:expr; $body:block
    ) => {
        $(#[$meta])*
        unsafe extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || $body)) {
                Ok(value) => value,
                Err(_) => {
                    guard_failed(stringify!($name), "panicked in the host (see the panic message above)");
                    $fallback
                }
            }
        }
    };
}

/// Logs a host callback that could not do what a module asked.
#[cold]
fn guard_failed(callback: &str, why: &str) {
    tracing::error!(callback, "a module's call into the host failed: {why}");
}

/// Logs a null pointer a module passed where the contract needs a live one.
#[cold]
fn null_argument(callback: &str) {
    guard_failed(callback, "null pointer argument");
}

/// The host's side of one app instance: what `log` and `spawn` need.
/// Leaked on creation ([`HostApp::leak`]) so that it outlives the module
/// image, which is never unloaded either.
pub struct HostApp {
    name: Arc<str>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    runtime: tokio::runtime::Handle,
}

impl HostApp {
    /// Creates the host side of an instance of app `name`, for the life of
    /// the process. Tasks the module spawns run on `runtime`.
    pub fn leak(name: Arc<str>, runtime: tokio::runtime::Handle) -> &'static HostApp {
        Box::leak(Box::new(HostApp {
            name,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            runtime,
        }))
    }

    /// Cancels (drops) every task the module spawned and waits until they
    /// are gone; tasks spawned after this are dropped at once.
    pub async fn cancel_tasks(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    pub(super) fn abi_ptr(&'static self) -> *const abi::HostApp {
        (self as *const HostApp).cast()
    }
}

/// One request. The module holds one reference while it handles it (and
/// releases it through the vtable); the host holds another to close the
/// database scope afterwards. One allocation for both.
pub struct HostRequest {
    pub method: Method,
    pub uri: Uri,
    /// Where the app's own path starts in `uri.path()`.
    pub path_start: usize,
    pub context_path: Arc<str>,
    pub headers: HeaderMap,
    /// Percent-decoded path parameters, in pattern order.
    pub params: Vec<(String, String)>,
    pub body: Bytes,
    /// What the request holds in the database.
    pub scope: RequestScope,
}

impl HostRequest {
    fn path(&self) -> &str {
        &self.uri.path()[self.path_start..]
    }
}

/// The response a module writes.
pub struct HostResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Bytes of header names and values so far.
    header_bytes: usize,
    /// Why the response cannot be sent (a limit the module went past).
    refused: Option<&'static str>,
}

impl HostResponse {
    pub(super) fn new() -> Self {
        HostResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Vec::new(),
            header_bytes: 0,
            refused: None,
        }
    }

    /// Why this response must not be sent, if a limit was exceeded.
    pub(super) fn refused(&self) -> Option<&'static str> {
        self.refused
    }

    /// Appends a header within the limits; past them, the response is
    /// refused and nothing more is added.
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) -> bool {
        if self.refused.is_some() {
            return false;
        }
        let bytes = self.header_bytes + name.as_str().len() + value.len();
        let over = if self.headers.len() >= MAX_RESPONSE_HEADERS {
            Some("more than 1000 response headers")
        } else if bytes > MAX_RESPONSE_HEADER_BYTES {
            Some("response headers larger than 64 KiB")
        } else {
            self.headers
                .try_append(name, value)
                .err()
                .map(|_| "too many response headers")
        };
        self.refused = over;
        self.header_bytes = bytes;
        over.is_none()
    }
}

/// One route a module registered during `init`.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: String,
    pub pattern: String,
    pub blocking: bool,
    pub transactional: bool,
}

/// One migration variant a module reported.
#[derive(Debug, Clone)]
pub struct MigrationSpec {
    pub version: i64,
    pub description: String,
    /// Empty for the default SQL, else `postgres` or `sqlite`.
    pub backend: String,
    pub sql: String,
}

/// What `migrations` reports.
#[derive(Default)]
pub(super) struct MigrationSink {
    pub migrations: Vec<MigrationSpec>,
}

/// What `init` reports besides its return value.
#[derive(Default)]
pub(super) struct InitSink {
    pub routes: Vec<RouteSpec>,
    pub error: Option<String>,
}

/// The vtable handed to every module; a static, valid for the process.
pub(super) static VTABLE: HostVtable = HostVtable {
    size: size_of::<HostVtable>(),
    log: host_log,
    request_release,
    request_part,
    request_header,
    request_header_at,
    request_param_at,
    response_status,
    response_header,
    response_body,
    route: init_route,
    init_error,
    sleep: host_sleep,
    spawn: host_spawn,
    db: host_db,
    buffer_release,
    tx_release,
    migration: host_migration,
};

/// A database reply that reports a failure of the host itself.
fn db_failure(message: &'static str) -> FfiFuture<abi::BufferHandle> {
    FfiFuture::new(async move { buffer(abi::wire::encode_error(abi::wire::ErrorKind::Other, message)) })
}

/// Hands `reply` to the module as a buffer; `buffer_release` takes it back.
fn buffer(reply: Vec<u8>) -> abi::BufferHandle {
    let mut reply = std::mem::ManuallyDrop::new(reply);
    abi::BufferHandle {
        ptr: reply.as_mut_ptr(),
        len: reply.len(),
        capacity: reply.capacity(),
    }
}

host_fn! {
    fn host_db(
        request: *const abi::HostRequest,
        op: u32,
        datasource: RawSlice,
        tx: u64,
        sql: RawSlice,
        params: RawSlice,
    ) -> FfiFuture<abi::BufferHandle> = db_failure("the host failed the database call");
    {
        // SAFETY: the module passes its live request, or null.
        let Some(request) = (unsafe { request_arc(request) }) else {
            null_argument("db");
            return db_failure("null request");
        };
        // SAFETY: the slices are valid for this call, and are copied
        // before it returns.
        let (datasource, sql, params) = unsafe {
            (
                text(datasource),
                // Shared: sqlx clones the SQL it runs (a copy, for a `String`).
                Arc::<str>::from(borrowed_text(sql)),
                abi::wire::decode_values(slice(params)),
            )
        };
        FfiFuture::new(async move {
            let reply = match params {
                Ok(params) => request.scope.call(op, &datasource, tx, sql, params).await,
                Err(e) => abi::wire::encode_error(abi::wire::ErrorKind::Other, &e.to_string()),
            };
            buffer(reply)
        })
    }
}

host_fn! {
    fn buffer_release(handle: abi::BufferHandle) = ();
    {
        if !handle.ptr.is_null() {
            // SAFETY: the parts of a `Vec<u8>` forgotten by `buffer`, given
            // back unchanged and once (contract of `buffer_release`).
            drop(unsafe { Vec::from_raw_parts(handle.ptr, handle.len, handle.capacity) });
        }
    }
}

host_fn! {
    fn tx_release(request: *const abi::HostRequest, tx: u64) = ();
    {
        // SAFETY: the module passes its live request, or null.
        match unsafe { request_ref(request) } {
            Some(r) => r.scope.release(tx),
            None => null_argument("tx_release"),
        }
    }
}

host_fn! {
    fn host_migration(
        sink: *mut abi::MigrationSink,
        version: i64,
        description: RawSlice,
        backend: RawSlice,
        sql: RawSlice,
    ) = ();
    {
        // SAFETY: the sink of the current `migrations` call, on this
        // thread, or null.
        let Some(sink) = (unsafe { sink.cast::<MigrationSink>().as_mut() }) else {
            return null_argument("migration");
        };
        sink.migrations.push(MigrationSpec {
            version,
            description: text(description),
            backend: text(backend),
            sql: text(sql),
        });
    }
}

fn text(s: RawSlice) -> String {
    // SAFETY: every slice a module passes is valid for the call (contract).
    unsafe { borrowed_text(s) }.into_owned()
}

/// A module's text, borrowed when it is valid UTF-8.
///
/// # Safety
/// `s` must be valid for reads for `'a`.
unsafe fn borrowed_text<'a>(s: RawSlice) -> Cow<'a, str> {
    // SAFETY: by this function's contract.
    let bytes = unsafe { slice(s) };
    // `from_utf8` first: its ASCII fast path beats the lossy decoder.
    std::str::from_utf8(bytes).map_or_else(|_| String::from_utf8_lossy(bytes), Cow::Borrowed)
}

host_fn! {
    fn host_log(app: *const abi::HostApp, level: u32, target: RawSlice, message: RawSlice) = ();
    {
        // SAFETY: `app` is null or the `HostApp` handed to this module's
        // init, leaked and so valid for the process.
        let app = unsafe { app.cast::<HostApp>().as_ref() }.map_or("?", |a| &a.name);
        let (target, message) = (text(target), text(message));
        match level {
            LOG_ERROR => tracing::error!(target: "crabcat::app", app, module = %target, "{message}"),
            LOG_WARN => tracing::warn!(target: "crabcat::app", app, module = %target, "{message}"),
            LOG_INFO => tracing::info!(target: "crabcat::app", app, module = %target, "{message}"),
            LOG_DEBUG => tracing::debug!(target: "crabcat::app", app, module = %target, "{message}"),
            LOG_TRACE => tracing::trace!(target: "crabcat::app", app, module = %target, "{message}"),
            _ => tracing::info!(target: "crabcat::app", app, module = %target, level, "{message}"),
        }
    }
}

/// The request behind `request`; `None` for null.
///
/// # Safety
/// `request` must be null or a live request the host handed out.
unsafe fn request_ref<'a>(request: *const abi::HostRequest) -> Option<&'a HostRequest> {
    // SAFETY: by the caller; the module holds it until `request_release`.
    unsafe { request.cast::<HostRequest>().as_ref() }
}

/// A reference of the host's own to the request behind `request`; `None`
/// for null.
///
/// # Safety
/// `request` must be null or a live request the host handed out.
unsafe fn request_arc(request: *const abi::HostRequest) -> Option<Arc<HostRequest>> {
    let request = request.cast::<HostRequest>();
    if request.is_null() {
        return None;
    }
    // SAFETY: by the caller, `request` came from `Arc::into_raw` and the
    // module's reference keeps it alive; this adds a reference of our own.
    unsafe {
        Arc::increment_strong_count(request);
        Some(Arc::from_raw(request))
    }
}

host_fn! {
    fn request_release(request: *mut abi::HostRequest) = ();
    {
        if !request.is_null() {
            // SAFETY: the module's reference, from `Arc::into_raw` in
            // `RawInstance::call*`; the module releases each request exactly once.
            drop(unsafe { Arc::from_raw(request.cast::<HostRequest>()) });
        }
    }
}

host_fn! {
    fn request_part(request: *const abi::HostRequest, part: u32) -> RawSlice = RawSlice::NULL;
    {
        // SAFETY: the module passes back the request it was given, or null.
        let Some(r) = (unsafe { request_ref(request) }) else {
            null_argument("request_part");
            return RawSlice::NULL;
        };
        match part {
            PART_METHOD => RawSlice::from_str(r.method.as_str()),
            PART_PATH => RawSlice::from_str(r.path()),
            PART_QUERY => RawSlice::from_str(r.uri.query().unwrap_or("")),
            PART_BODY => RawSlice::new(&r.body),
            PART_CONTEXT_PATH => RawSlice::from_str(&r.context_path),
            _ => RawSlice::NULL,
        }
    }
}

host_fn! {
    fn request_header(request: *const abi::HostRequest, name: RawSlice) -> RawSlice = RawSlice::NULL;
    {
        // SAFETY: the module passes back the request it was given (or
        // null) and a name valid for the call.
        let (r, name) = unsafe { (request_ref(request), slice(name)) };
        let Some(r) = r else {
            null_argument("request_header");
            return RawSlice::NULL;
        };
        match HeaderName::from_bytes(name).ok().and_then(|n| r.headers.get(n)) {
            Some(value) => RawSlice::new(value.as_bytes()),
            None => RawSlice::NULL,
        }
    }
}

/// Writes `pair` to the out-pointers; `false` if there is no pair or a
/// pointer is null.
///
/// # Safety
/// `name` and `value` must each be null or valid for writes.
unsafe fn write_pair(name: *mut RawSlice, value: *mut RawSlice, pair: Option<(&[u8], &[u8])>) -> bool {
    let Some((n, v)) = pair else { return false };
    if name.is_null() || value.is_null() {
        null_argument("request_header_at/request_param_at");
        return false;
    }
    // SAFETY: non-null and, by the caller, valid for writes (the SDK
    // passes pointers to its locals).
    unsafe {
        name.write(RawSlice::new(n));
        value.write(RawSlice::new(v));
    }
    true
}

host_fn! {
    fn request_header_at(
        request: *const abi::HostRequest,
        index: usize,
        name: *mut RawSlice,
        value: *mut RawSlice,
    ) -> bool = false;
    {
        // SAFETY: the module passes back its request, or null.
        let Some(r) = (unsafe { request_ref(request) }) else {
            null_argument("request_header_at");
            return false;
        };
        let pair = r
            .headers
            .iter()
            .nth(index)
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
        // SAFETY: out-pointers from the SDK, or null.
        unsafe { write_pair(name, value, pair) }
    }
}

host_fn! {
    fn request_param_at(
        request: *const abi::HostRequest,
        index: usize,
        name: *mut RawSlice,
        value: *mut RawSlice,
    ) -> bool = false;
    {
        // SAFETY: the module passes back its request, or null.
        let Some(r) = (unsafe { request_ref(request) }) else {
            null_argument("request_param_at");
            return false;
        };
        let pair = r.params.get(index).map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        // SAFETY: out-pointers from the SDK, or null.
        unsafe { write_pair(name, value, pair) }
    }
}

/// The response sink behind `response`; `None` for null.
///
/// # Safety
/// `response` must be null or the live sink of the current call.
unsafe fn response_mut<'a>(response: *mut abi::HostResponse) -> Option<&'a mut HostResponse> {
    // SAFETY: by the caller; only the module's one future writes it.
    unsafe { response.cast::<HostResponse>().as_mut() }
}

host_fn! {
    fn response_status(response: *mut abi::HostResponse, status: u16) = ();
    {
        // SAFETY: the module passes back its sink, or null.
        let Some(r) = (unsafe { response_mut(response) }) else {
            return null_argument("response_status");
        };
        r.status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
}

host_fn! {
    fn response_header(response: *mut abi::HostResponse, name: RawSlice, value: RawSlice, flags: u32) -> bool = false;
    {
        // SAFETY: the module passes back its sink (or null) and slices
        // valid for the call.
        let (r, name) = unsafe { (response_mut(response), slice(name)) };
        let Some(r) = r else {
            null_argument("response_header");
            return false;
        };
        let value = if flags & abi::HEADER_VALUE_STATIC != 0 {
            // SAFETY: the module marks `'static` data only (the SDK: a
            // borrowed `Cow<'static, str>`), and module images are never
            // unloaded, so it lives as long as the process.
            HeaderValue::from_maybe_shared(Bytes::from_static(unsafe { slice(value) }))
        } else {
            // SAFETY: valid for the call; copied here.
            HeaderValue::from_bytes(unsafe { slice(value) })
        };
        match (HeaderName::from_bytes(name), value) {
            (Ok(name), Ok(value)) => r.append_header(name, value),
            _ => false,
        }
    }
}

host_fn! {
    fn response_body(response: *mut abi::HostResponse, bytes: RawSlice) = ();
    {
        // SAFETY: the module passes back its sink (or null) and a slice
        // valid for the call.
        let (r, bytes) = unsafe { (response_mut(response), slice(bytes)) };
        match r {
            Some(r) => r.body.extend_from_slice(bytes),
            None => null_argument("response_body"),
        }
    }
}

/// The sink of the current `init` call; `None` for null.
///
/// # Safety
/// `sink` must be null or the sink of the current `init` call.
unsafe fn sink_mut<'a>(sink: *mut abi::InitSink) -> Option<&'a mut InitSink> {
    // SAFETY: by the caller; init runs on one thread.
    unsafe { sink.cast::<InitSink>().as_mut() }
}

host_fn! {
    fn init_route(sink: *mut abi::InitSink, method: RawSlice, pattern: RawSlice, flags: u32) = ();
    {
        // SAFETY: the module passes back the sink of its init call, or null.
        let Some(sink) = (unsafe { sink_mut(sink) }) else {
            return null_argument("route");
        };
        sink.routes.push(RouteSpec {
            method: text(method),
            pattern: text(pattern),
            blocking: flags & abi::ROUTE_BLOCKING != 0,
            transactional: flags & abi::ROUTE_TRANSACTIONAL != 0,
        });
    }
}

host_fn! {
    fn init_error(sink: *mut abi::InitSink, message: RawSlice) = ();
    {
        // SAFETY: the module passes back the sink of its init call, or null.
        match unsafe { sink_mut(sink) } {
            Some(sink) => sink.error = Some(text(message)),
            None => null_argument("init_error"),
        }
    }
}

host_fn! {
    fn host_sleep(millis: u64) -> FfiFuture<()> = FfiFuture::new(async {});
    {
        // The timer is created on first poll, inside the host runtime.
        FfiFuture::new(async move { tokio::time::sleep(Duration::from_millis(millis)).await })
    }
}

host_fn! {
    fn host_spawn(app: *const abi::HostApp, task: FfiFuture<()>) = ();
    {
        // SAFETY: `app` is the leaked `HostApp` of this module's init, or null.
        let Some(app) = (unsafe { app.cast::<HostApp>().as_ref() }) else {
            null_argument("spawn");
            return; // dropping `task` runs the module's drop function
        };
        if app.cancel.is_cancelled() {
            return;
        }
        let cancel = app.cancel.clone();
        app.tasks.spawn_on(
            async move {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = task => {}
                }
            },
            &app.runtime,
        );
    }
}

pub(super) fn vtable() -> *const HostVtable {
    &VTABLE
}

#[cfg(test)]
mod tests {
    use std::ptr::{null, null_mut};

    use super::*;

    host_fn! {
        fn panics(x: u32) -> u32 = 7;
        {
            if x > 0 {
                panic!("a bug in the host");
            }
            x
        }
    }

    #[test]
    fn a_panic_in_a_callback_becomes_its_fallback() {
        // SAFETY: a plain function with no pointer arguments.
        assert_eq!(unsafe { panics(0) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { panics(1) }, 7, "caught, not unwound");
    }

    #[test]
    fn null_pointers_get_errors_not_crashes() {
        let name = RawSlice::from_str("x-a");
        let mut out = RawSlice::NULL;
        // SAFETY: every pointer is null, which each callback must refuse,
        // or points to a live local.
        unsafe {
            assert!((VTABLE.request_part)(null(), PART_PATH).is_null());
            assert!((VTABLE.request_header)(null(), name).is_null());
            assert!(!(VTABLE.request_header_at)(null(), 0, &raw mut out, &raw mut out));
            assert!(!(VTABLE.request_param_at)(null(), 0, null_mut(), null_mut()));
            assert!(!(VTABLE.response_header)(null_mut(), name, name, 0));
            (VTABLE.response_status)(null_mut(), 200);
            (VTABLE.response_body)(null_mut(), name);
            (VTABLE.route)(null_mut(), name, name, 0);
            (VTABLE.init_error)(null_mut(), name);
            (VTABLE.migration)(null_mut(), 1, name, name, name);
            (VTABLE.tx_release)(null(), 1);
            (VTABLE.request_release)(null_mut());
            (VTABLE.log)(null(), LOG_INFO, name, name);
        }
    }

    #[test]
    fn response_headers_past_the_limits_refuse_the_response() {
        let mut response = HostResponse::new();
        let sink: *mut abi::HostResponse = (&raw mut response).cast();
        let (name, value) = (RawSlice::from_str("x-h"), RawSlice::from_str("v"));
        for _ in 0..MAX_RESPONSE_HEADERS {
            // SAFETY: `sink` points to the live local response.
            assert!(unsafe { (VTABLE.response_header)(sink, name, value, 0) });
        }
        assert_eq!(response.refused(), None);
        // SAFETY: as above.
        assert!(!unsafe { (VTABLE.response_header)(sink, name, value, 0) });
        assert!(response.refused().is_some_and(|r| r.contains("1000")));
        assert_eq!(response.headers.len(), MAX_RESPONSE_HEADERS);

        let mut response = HostResponse::new();
        let sink: *mut abi::HostResponse = (&raw mut response).cast();
        let big = "v".repeat(40 * 1024);
        for expected in [true, false] {
            // SAFETY: as above; `big` outlives the call.
            let added = unsafe { (VTABLE.response_header)(sink, name, RawSlice::from_str(&big), 0) };
            assert_eq!(added, expected);
        }
        assert!(response.refused().is_some_and(|r| r.contains("64 KiB")));
    }
}
