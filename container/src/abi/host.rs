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
}

impl HostResponse {
    pub(super) fn new() -> Self {
        HostResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Vec::new(),
        }
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

unsafe extern "C" fn host_db(
    request: *const abi::HostRequest,
    op: u32,
    datasource: RawSlice,
    tx: u64,
    sql: RawSlice,
    params: RawSlice,
) -> FfiFuture<abi::BufferHandle> {
    // SAFETY: the module passes its live request; the slices are valid for
    // this call, and are copied before it returns.
    let (request, datasource, sql, params) = unsafe {
        (
            request_arc(request),
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
        // The vector's parts, put back together by `buffer_release`.
        let mut reply = std::mem::ManuallyDrop::new(reply);
        abi::BufferHandle {
            ptr: reply.as_mut_ptr(),
            len: reply.len(),
            capacity: reply.capacity(),
        }
    })
}

unsafe extern "C" fn buffer_release(buffer: abi::BufferHandle) {
    if !buffer.ptr.is_null() {
        // SAFETY: the parts of a `Vec<u8>` forgotten by `host_db`, given
        // back unchanged and once (contract of `buffer_release`).
        drop(unsafe { Vec::from_raw_parts(buffer.ptr, buffer.len, buffer.capacity) });
    }
}

unsafe extern "C" fn tx_release(request: *const abi::HostRequest, tx: u64) {
    // SAFETY: the module passes its live request.
    unsafe { request_ref(request) }.scope.release(tx);
}

unsafe extern "C" fn host_migration(
    sink: *mut abi::MigrationSink,
    version: i64,
    description: RawSlice,
    backend: RawSlice,
    sql: RawSlice,
) {
    // SAFETY: the sink of the current `migrations` call, on this thread.
    let sink = unsafe { &mut *sink.cast::<MigrationSink>() };
    sink.migrations.push(MigrationSpec {
        version,
        description: text(description),
        backend: text(backend),
        sql: text(sql),
    });
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

unsafe extern "C" fn host_log(app: *const abi::HostApp, level: u32, target: RawSlice, message: RawSlice) {
    // SAFETY: `app` is null or the `HostApp` handed to this module's init,
    // leaked and so valid for the process.
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

/// # Safety
/// `request` must be a live request the host handed out.
unsafe fn request_ref<'a>(request: *const abi::HostRequest) -> &'a HostRequest {
    // SAFETY: by the caller; the module holds it until `request_release`.
    unsafe { &*request.cast::<HostRequest>() }
}

/// # Safety
/// `request` must be a live request the host handed out.
unsafe fn request_arc(request: *const abi::HostRequest) -> Arc<HostRequest> {
    let request = request.cast::<HostRequest>();
    // SAFETY: by the caller, `request` came from `Arc::into_raw` and the
    // module's reference keeps it alive; this adds a reference of our own.
    unsafe {
        Arc::increment_strong_count(request);
        Arc::from_raw(request)
    }
}

unsafe extern "C" fn request_release(request: *mut abi::HostRequest) {
    if !request.is_null() {
        // SAFETY: the module's reference, from `Arc::into_raw` in
        // `RawInstance::call*`; the module releases each request exactly once.
        drop(unsafe { Arc::from_raw(request.cast::<HostRequest>()) });
    }
}

unsafe extern "C" fn request_part(request: *const abi::HostRequest, part: u32) -> RawSlice {
    // SAFETY: the module passes back the request it was given.
    let r = unsafe { request_ref(request) };
    match part {
        PART_METHOD => RawSlice::from_str(r.method.as_str()),
        PART_PATH => RawSlice::from_str(r.path()),
        PART_QUERY => RawSlice::from_str(r.uri.query().unwrap_or("")),
        PART_BODY => RawSlice::new(&r.body),
        PART_CONTEXT_PATH => RawSlice::from_str(&r.context_path),
        _ => RawSlice::NULL,
    }
}

unsafe extern "C" fn request_header(request: *const abi::HostRequest, name: RawSlice) -> RawSlice {
    // SAFETY: the module passes back the request it was given and a name
    // valid for the call.
    let (r, name) = unsafe { (request_ref(request), slice(name)) };
    match HeaderName::from_bytes(name).ok().and_then(|n| r.headers.get(n)) {
        Some(value) => RawSlice::new(value.as_bytes()),
        None => RawSlice::NULL,
    }
}

/// # Safety
/// `name` and `value` must be valid for writes.
unsafe fn write_pair(name: *mut RawSlice, value: *mut RawSlice, pair: Option<(&[u8], &[u8])>) -> bool {
    let Some((n, v)) = pair else { return false };
    // SAFETY: by the caller (the SDK passes pointers to its locals).
    unsafe {
        name.write(RawSlice::new(n));
        value.write(RawSlice::new(v));
    }
    true
}

unsafe extern "C" fn request_header_at(
    request: *const abi::HostRequest,
    index: usize,
    name: *mut RawSlice,
    value: *mut RawSlice,
) -> bool {
    // SAFETY: the module passes back its request.
    let r = unsafe { request_ref(request) };
    let pair = r
        .headers
        .iter()
        .nth(index)
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
    // SAFETY: out-pointers from the SDK.
    unsafe { write_pair(name, value, pair) }
}

unsafe extern "C" fn request_param_at(
    request: *const abi::HostRequest,
    index: usize,
    name: *mut RawSlice,
    value: *mut RawSlice,
) -> bool {
    // SAFETY: the module passes back its request.
    let r = unsafe { request_ref(request) };
    let pair = r.params.get(index).map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    // SAFETY: out-pointers from the SDK.
    unsafe { write_pair(name, value, pair) }
}

/// # Safety
/// `response` must be the live sink of the current call.
unsafe fn response_mut<'a>(response: *mut abi::HostResponse) -> &'a mut HostResponse {
    // SAFETY: by the caller; only the module's one future writes it.
    unsafe { &mut *response.cast::<HostResponse>() }
}

unsafe extern "C" fn response_status(response: *mut abi::HostResponse, status: u16) {
    // SAFETY: the module passes back its sink.
    let r = unsafe { response_mut(response) };
    r.status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
}

unsafe extern "C" fn response_header(
    response: *mut abi::HostResponse,
    name: RawSlice,
    value: RawSlice,
    flags: u32,
) -> bool {
    // SAFETY: the module passes back its sink and slices valid for the call.
    let (r, name) = unsafe { (response_mut(response), slice(name)) };
    let value = if flags & abi::HEADER_VALUE_STATIC != 0 {
        // SAFETY: the module marks `'static` data only (the SDK: a borrowed
        // `Cow<'static, str>`), and module images are never unloaded, so
        // it lives as long as the process.
        HeaderValue::from_maybe_shared(Bytes::from_static(unsafe { slice(value) }))
    } else {
        // SAFETY: valid for the call; copied here.
        HeaderValue::from_bytes(unsafe { slice(value) })
    };
    match (HeaderName::from_bytes(name), value) {
        (Ok(name), Ok(value)) => {
            r.headers.append(name, value);
            true
        }
        _ => false,
    }
}

unsafe extern "C" fn response_body(response: *mut abi::HostResponse, bytes: RawSlice) {
    // SAFETY: the module passes back its sink and a slice valid for the call.
    let (r, bytes) = unsafe { (response_mut(response), slice(bytes)) };
    r.body.extend_from_slice(bytes);
}

/// # Safety
/// `sink` must be the sink of the current `init` call.
unsafe fn sink_mut<'a>(sink: *mut abi::InitSink) -> &'a mut InitSink {
    // SAFETY: by the caller; init runs on one thread.
    unsafe { &mut *sink.cast::<InitSink>() }
}

unsafe extern "C" fn init_route(sink: *mut abi::InitSink, method: RawSlice, pattern: RawSlice, flags: u32) {
    // SAFETY: the module passes back the sink of its init call.
    let sink = unsafe { sink_mut(sink) };
    sink.routes.push(RouteSpec {
        method: text(method),
        pattern: text(pattern),
        blocking: flags & abi::ROUTE_BLOCKING != 0,
        transactional: flags & abi::ROUTE_TRANSACTIONAL != 0,
    });
}

unsafe extern "C" fn init_error(sink: *mut abi::InitSink, message: RawSlice) {
    // SAFETY: the module passes back the sink of its init call.
    unsafe { sink_mut(sink) }.error = Some(text(message));
}

unsafe extern "C" fn host_sleep(millis: u64) -> FfiFuture<()> {
    // The timer is created on first poll, inside the host runtime.
    FfiFuture::new(async move { tokio::time::sleep(Duration::from_millis(millis)).await })
}

unsafe extern "C" fn host_spawn(app: *const abi::HostApp, task: FfiFuture<()>) {
    // SAFETY: `app` is the leaked `HostApp` of this module's init.
    let Some(app) = (unsafe { app.cast::<HostApp>().as_ref() }) else {
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

pub(super) fn vtable() -> *const HostVtable {
    &VTABLE
}
