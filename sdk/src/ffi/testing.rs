//! A stand-in host for the SDK's own unit tests: requests built in Rust and
//! read through the real [`RequestHandle`], responses written through the
//! real [`ResponseSink`] and read back.
//!
//! Only request and response calls do anything; the database answers that
//! there is none, and logging, timers and spawning are no-ops. These
//! functions do not panic (a panic in an `extern "C"` function aborts the
//! test process).

use core::ptr::null_mut;
use std::sync::Arc;

use super::host::{RequestHandle, ResponseSink};
use std::sync::atomic::{AtomicBool, Ordering};

use super::stream::FfiBodyStream;
use crate::abi::{
    BodyChunk, BufferHandle, FfiFuture, HostApp, HostRequest, HostResponse, HostSocket, HostVtable, InitSink,
    MigrationSink, PART_BODY, PART_CONTEXT_PATH, PART_METHOD, PART_PATH, PART_QUERY, RawSlice, SESSION_NOT_LOADED,
    SESSION_OFF, WsEvent,
};
use crate::handler::HandlerFn;
use crate::request::Request;
use crate::response::Response;

/// A request to build for a test.
#[derive(Debug, Default, Clone)]
pub(crate) struct TestRequest {
    method: String,
    path: String,
    query: String,
    body: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    params: Vec<(String, String)>,
    /// Whether `request_body_next` has handed out the body.
    body_read: Arc<AtomicBool>,
}

impl TestRequest {
    /// `GET path`.
    pub(crate) fn get(path: &str) -> Self {
        TestRequest {
            method: "GET".into(),
            path: path.into(),
            ..TestRequest::default()
        }
    }

    /// `POST path`.
    pub(crate) fn post(path: &str) -> Self {
        TestRequest {
            method: "POST".into(),
            ..TestRequest::get(path)
        }
    }

    /// The raw query string, without `?`.
    pub(crate) fn query(mut self, query: &str) -> Self {
        self.query = query.into();
        self
    }

    /// Adds a header; `name` is matched case-insensitively.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// Adds a (decoded) path parameter, as the route's pattern names it.
    pub(crate) fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    pub(crate) fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The [`Request`] a handler would get.
    pub(crate) fn build(self) -> Request {
        let raw = Box::into_raw(Box::new(self)).cast::<HostRequest>();
        // SAFETY: `raw` is a live, boxed `TestRequest`, which `request_release`
        // (called once, when the handle drops) frees; the vtable is static.
        let handle = unsafe { RequestHandle::from_raw(&TEST_HOST, raw) };
        Request::from_handle(handle.unwrap_or_else(|| unreachable!("Box::into_raw is never null")))
    }
}

/// Runs `handler` for `app` on `request` as the container would, and
/// returns the response it wrote (a panic gives `None`).
pub(crate) fn serve<A>(handler: &HandlerFn<A>, app: &Arc<A>, request: Request) -> Option<Response> {
    match handler {
        HandlerFn::Blocking(f) => Some(f(app, request)),
        HandlerFn::Async(f) => {
            let mut captured = Box::<Captured>::default();
            let raw = (&mut *captured as *mut Captured).cast::<HostResponse>();
            // SAFETY: `raw` points to `captured`, which outlives the future
            // (it is awaited to the end below, before `captured` is read).
            let sink = unsafe { ResponseSink::new(&TEST_HOST, raw) };
            let code = futures_executor::block_on(f(app, request, sink));
            (code == crate::abi::SERVICE_OK).then(|| captured.into_response())
        }
    }
}

/// What a handler wrote into its sink.
#[derive(Default)]
struct Captured {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn into_response(self) -> Response {
        let status = http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let response = Response::new(status).with_body(self.body);
        self.headers.into_iter().fold(response, |r, (k, v)| r.with_header(k, v))
    }
}

static TEST_HOST: HostVtable = HostVtable {
    size: size_of::<HostVtable>(),
    log,
    request_release,
    request_part,
    request_header,
    request_header_at,
    request_param_at,
    response_status,
    response_header,
    response_body,
    route,
    init_error,
    sleep,
    spawn,
    db,
    buffer_release,
    tx_release,
    migration,
    response_stream,
    request_body_next,
    ws_accept,
    ws_recv,
    ws_send,
    ws_close,
    ws_release,
    hub_subscribe,
    hub_unsubscribe,
    hub_publish,
    session_load,
    session_get,
    session_set,
    session_renew,
    session_invalidate,
};

/// # Safety
/// `request` must be a live `TestRequest` made by [`TestRequest::build`].
unsafe fn test_request<'a>(request: *const HostRequest) -> &'a TestRequest {
    // SAFETY: by this function's contract.
    unsafe { &*request.cast::<TestRequest>() }
}

/// # Safety
/// `response` must be the `Captured` that [`serve`] lent the sink.
unsafe fn captured<'a>(response: *mut HostResponse) -> &'a mut Captured {
    // SAFETY: by this function's contract; the sink writes one call at a time.
    unsafe { &mut *response.cast::<Captured>() }
}

/// # Safety
/// `slice` must be valid for reads for the duration of the call.
unsafe fn text(slice: RawSlice) -> String {
    // SAFETY: by this function's contract.
    String::from_utf8_lossy(unsafe { super::host::bytes(slice) }).into_owned()
}

unsafe extern "C" fn request_release(request: *mut HostRequest) {
    // SAFETY: made by `Box::into_raw` in `TestRequest::build`, released once.
    drop(unsafe { Box::from_raw(request.cast::<TestRequest>()) });
}

unsafe extern "C" fn request_part(request: *const HostRequest, part: u32) -> RawSlice {
    // SAFETY: the SDK passes the request it was given, still live.
    let request = unsafe { test_request(request) };
    match part {
        PART_METHOD => RawSlice::from_str(&request.method),
        PART_PATH => RawSlice::from_str(&request.path),
        PART_QUERY => RawSlice::from_str(&request.query),
        PART_BODY => RawSlice::new(&request.body),
        PART_CONTEXT_PATH => RawSlice::from_str(""),
        _ => RawSlice::NULL,
    }
}

unsafe extern "C" fn request_header(request: *const HostRequest, name: RawSlice) -> RawSlice {
    // SAFETY: as in `request_part`; `name` is valid for this call.
    let (request, name) = unsafe { (test_request(request), text(name)) };
    let name = name.to_ascii_lowercase();
    let value = request.headers.iter().find(|(k, _)| *k == name);
    value.map_or(RawSlice::NULL, |(_, v)| RawSlice::new(v))
}

/// Writes pair `index` of `pairs` into the out-pointers.
///
/// # Safety
/// `name` and `value` must be valid for writes.
unsafe fn pair_at(pairs: &[(&[u8], &[u8])], index: usize, name: *mut RawSlice, value: *mut RawSlice) -> bool {
    let Some((k, v)) = pairs.get(index) else {
        return false;
    };
    // SAFETY: by this function's contract.
    unsafe {
        *name = RawSlice::new(k);
        *value = RawSlice::new(v);
    }
    true
}

unsafe extern "C" fn request_header_at(
    request: *const HostRequest,
    index: usize,
    name: *mut RawSlice,
    value: *mut RawSlice,
) -> bool {
    // SAFETY: as in `request_part`.
    let request = unsafe { test_request(request) };
    let pairs: Vec<(&[u8], &[u8])> = request.headers.iter().map(|(k, v)| (k.as_bytes(), &v[..])).collect();
    // SAFETY: the SDK passes pointers to its own locals.
    unsafe { pair_at(&pairs, index, name, value) }
}

unsafe extern "C" fn request_param_at(
    request: *const HostRequest,
    index: usize,
    name: *mut RawSlice,
    value: *mut RawSlice,
) -> bool {
    // SAFETY: as in `request_part`.
    let request = unsafe { test_request(request) };
    let pairs: Vec<(&[u8], &[u8])> = request
        .params
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    // SAFETY: the SDK passes pointers to its own locals.
    unsafe { pair_at(&pairs, index, name, value) }
}

unsafe extern "C" fn response_status(response: *mut HostResponse, status: u16) {
    // SAFETY: the sink's response is the one `serve` lent.
    unsafe { captured(response) }.status = status;
}

unsafe extern "C" fn response_header(response: *mut HostResponse, name: RawSlice, value: RawSlice, _: u32) -> bool {
    // SAFETY: as in `response_status`; the slices are valid for this call.
    let (response, name, value) = unsafe { (captured(response), text(name), text(value)) };
    response.headers.push((name, value));
    true
}

unsafe extern "C" fn response_body(response: *mut HostResponse, bytes: RawSlice, _: u32) {
    // SAFETY: as in `response_header`.
    let (response, bytes) = unsafe { (captured(response), super::host::bytes(bytes)) };
    response.body.extend_from_slice(bytes);
}

unsafe extern "C" fn log(_: *const HostApp, _: u32, _: RawSlice, _: RawSlice) {}

unsafe extern "C" fn route(_: *mut InitSink, _: RawSlice, _: RawSlice, _: u32, _: u64) {}

/// Reads a streamed body to its end (the test streams are ready at once).
unsafe extern "C" fn response_stream(response: *mut HostResponse, mut stream: FfiBodyStream) {
    // SAFETY: as in `response_body`.
    let response = unsafe { captured(response) };
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    while let std::task::Poll::Ready(super::stream::Chunk::Data(data)) = stream.poll_next_chunk(&mut cx) {
        response.body.extend_from_slice(data);
    }
}

/// The whole body as one chunk, then the end.
unsafe extern "C" fn request_body_next(request: *const HostRequest) -> FfiFuture<BodyChunk> {
    // SAFETY: as in `request_part`.
    let request = unsafe { test_request(request) };
    let chunk = match request.body_read.swap(true, Ordering::SeqCst) {
        false if !request.body.is_empty() => BodyChunk::Data(RawSlice::new(&request.body)),
        _ => BodyChunk::End,
    };
    FfiFuture::new(async move { chunk })
}

/// No WebSockets here.
unsafe extern "C" fn ws_accept(_: *const HostRequest, _: RawSlice) -> *mut HostSocket {
    null_mut()
}

unsafe extern "C" fn ws_recv(_: *mut HostSocket) -> FfiFuture<WsEvent> {
    FfiFuture::new(async {
        WsEvent::Closed {
            code: 1005,
            reason: RawSlice::NULL,
        }
    })
}

unsafe extern "C" fn ws_send(_: *mut HostSocket, _: u32, _: RawSlice) -> FfiFuture<bool> {
    FfiFuture::new(async { false })
}

unsafe extern "C" fn ws_close(_: *mut HostSocket, _: u16, _: RawSlice) {}

unsafe extern "C" fn ws_release(_: *mut HostSocket) {}

unsafe extern "C" fn hub_subscribe(_: *mut HostSocket, _: RawSlice, _: u32) -> bool {
    false
}

unsafe extern "C" fn hub_unsubscribe(_: *mut HostSocket, _: RawSlice) {}

unsafe extern "C" fn hub_publish(_: *const HostApp, _: RawSlice, _: RawSlice) -> u64 {
    0
}

/// No sessions: the stand-in host has them turned off.
unsafe extern "C" fn session_load(_: *const HostRequest) -> FfiFuture<u32> {
    FfiFuture::new(async { SESSION_OFF })
}

unsafe extern "C" fn session_get(_: *const HostRequest, _: RawSlice) -> BufferHandle {
    BufferHandle {
        ptr: null_mut(),
        len: 0,
        capacity: 0,
    }
}

unsafe extern "C" fn session_set(_: *const HostRequest, _: RawSlice, _: RawSlice) -> u32 {
    SESSION_NOT_LOADED
}

unsafe extern "C" fn session_renew(_: *const HostRequest) -> u32 {
    SESSION_NOT_LOADED
}

unsafe extern "C" fn session_invalidate(_: *const HostRequest) -> u32 {
    SESSION_NOT_LOADED
}

unsafe extern "C" fn init_error(_: *mut InitSink, _: RawSlice) {}

unsafe extern "C" fn sleep(_: u64) -> FfiFuture<()> {
    FfiFuture::new(async {})
}

unsafe extern "C" fn spawn(_: *const HostApp, task: FfiFuture<()>) {
    drop(task);
}

/// No database: every call gets no reply, which the SDK reports as an error.
unsafe extern "C" fn db(
    _: *const HostRequest,
    _: u32,
    _: RawSlice,
    _: u64,
    _: RawSlice,
    _: RawSlice,
) -> FfiFuture<BufferHandle> {
    FfiFuture::new(async {
        BufferHandle {
            ptr: null_mut(),
            len: 0,
            capacity: 0,
        }
    })
}

unsafe extern "C" fn buffer_release(_: BufferHandle) {}

unsafe extern "C" fn tx_release(_: *const HostRequest, _: u64) {}

unsafe extern "C" fn migration(_: *mut MigrationSink, _: i64, _: RawSlice, _: RawSlice, _: RawSlice) {}
