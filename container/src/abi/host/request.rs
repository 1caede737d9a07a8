//! The request a handler reads: its parts, headers and parameters, lent
//! to the module for the call.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use crabcat_sdk::abi::{
    self, BodyChunk, FfiFuture, PART_BODY, PART_CONTEXT_PATH, PART_METHOD, PART_PATH, PART_QUERY, RawSlice,
};
use http::header::HeaderName;
use http::{HeaderMap, Method, Uri};
use http_body_util::BodyExt as _;

use super::socket::{Accepted, Socket};
use super::{null_argument, slice, text};
use crate::db::RequestScope;

/// One request. The module holds one reference while it handles it (and
/// releases it through the vtable); the host holds another to close the
/// database scope afterwards. One allocation for both.
pub struct HostRequest {
    pub method: Method,
    pub uri: Uri,
    /// Where the app's own path starts in `uri.path()`.
    pub path_start: usize,
    pub headers: HeaderMap,
    /// Percent-decoded path parameters, in pattern order.
    pub params: Vec<(String, String)>,
    pub body: Bytes,
    /// What the request holds in the database.
    pub scope: RequestScope,
    /// The body as the module reads it with `request_body_next`.
    pub reader: BodyReader,
    /// On a WebSocket route: the handshake, until the module accepts it.
    pub upgrade: Option<Box<Upgrade>>,
    /// The instance's host side (its app's sessions, among others).
    pub host_app: &'static super::HostApp,
    /// The request came over TLS (directly, or through a trusted proxy).
    pub secure: bool,
    /// Its session, once the module loaded it.
    pub session: super::SessionCell,
}

/// The body of a request, read chunk by chunk: from the client on a
/// streaming route, else the buffered body as one chunk.
pub struct BodyReader {
    /// On a streaming route: the body still to read. Boxed: most requests
    /// have none, and the request stays small.
    streaming: Option<Box<tokio::sync::Mutex<ReaderState>>>,
    /// The buffered body has been handed out.
    buffered_read: std::sync::atomic::AtomicBool,
}

struct ReaderState {
    body: axum::body::Body,
    limit: usize,
    /// The longest wait for the client's next chunk.
    idle_timeout: std::time::Duration,
    read: usize,
    /// The body ended (or failed).
    done: bool,
    /// What the last call lent to the module.
    lent: Bytes,
}

impl BodyReader {
    /// A reader of the buffered body (`HostRequest::body`).
    pub fn buffered() -> Self {
        BodyReader {
            streaming: None,
            buffered_read: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A reader of `body` as it arrives, refusing more than `limit` bytes
    /// and a wait longer than `idle_timeout` for the next chunk.
    pub fn streaming(body: axum::body::Body, limit: usize, idle_timeout: std::time::Duration) -> Self {
        let state = ReaderState {
            body,
            limit,
            idle_timeout,
            read: 0,
            done: false,
            lent: Bytes::new(),
        };
        BodyReader {
            streaming: Some(Box::new(tokio::sync::Mutex::new(state))),
            ..Self::buffered()
        }
    }
}

/// What the next chunk is: data, the end, or an error for the client.
enum Next {
    Data(Bytes),
    End,
    Error(String),
}

impl ReaderState {
    async fn next(&mut self) -> Next {
        if self.done {
            return Next::End;
        }
        let body = &mut self.body;
        loop {
            let Ok(frame) = tokio::time::timeout(self.idle_timeout, body.frame()).await else {
                self.done = true;
                return Next::Error(format!(
                    "408 no request body data for {} s (server.request_timeout)",
                    self.idle_timeout.as_secs()
                ));
            };
            match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue }; // trailers
                    self.read += data.len();
                    if self.read > self.limit {
                        self.done = true;
                        return Next::Error(format!("413 request body larger than {} bytes", self.limit));
                    }
                    if !data.is_empty() {
                        return Next::Data(data);
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Next::Error(format!("400 could not read the request body: {e}"));
                }
                None => {
                    self.done = true;
                    return Next::End;
                }
            }
        }
    }
}

/// A WebSocket handshake waiting for the module to accept it.
pub struct Upgrade {
    /// The app whose hub the socket's topics belong to.
    pub app: Arc<str>,
    /// Taken by `ws_accept`; the dispatcher waits on the other end.
    accept: Mutex<Option<tokio::sync::oneshot::Sender<Accepted>>>,
    /// The accepted socket, for the dispatcher to close when the handler ends.
    socket: Mutex<Option<Arc<Socket>>>,
}

impl Upgrade {
    /// A handshake of app `app`, and where its acceptance arrives.
    pub fn new(app: Arc<str>) -> (Self, tokio::sync::oneshot::Receiver<Accepted>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let upgrade = Upgrade {
            app,
            accept: Mutex::new(Some(tx)),
            socket: Mutex::new(None),
        };
        (upgrade, rx)
    }

    /// The socket the module accepted, if it did.
    pub fn socket(&self) -> Option<Arc<Socket>> {
        self.socket.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl HostRequest {
    /// The request before its call, to complete (its body, its upgrade).
    /// A request is made in its `Arc` and shared only once its handler
    /// runs.
    ///
    /// # Panics
    /// If the request is already shared: a call that is running.
    pub fn unshared(this: &mut Arc<Self>) -> &mut Self {
        Arc::get_mut(this).expect("a request is shared only once its handler runs")
    }

    fn path(&self) -> &str {
        &self.uri.path()[self.path_start..]
    }
}

/// The request behind `request`; `None` for null.
///
/// # Safety
/// `request` must be null or a live request the host handed out.
pub(super) unsafe fn request_ref<'a>(request: *const abi::HostRequest) -> Option<&'a HostRequest> {
    // SAFETY: by the caller; the module holds it until `request_release`.
    unsafe { request.cast::<HostRequest>().as_ref() }
}

/// A reference of the host's own to the request behind `request`; `None`
/// for null.
///
/// # Safety
/// `request` must be null or a live request the host handed out.
pub(super) unsafe fn request_arc(request: *const abi::HostRequest) -> Option<Arc<HostRequest>> {
    // SAFETY: by the caller, `request` is null or came from `Arc::into_raw`
    // and the module's reference keeps it alive.
    unsafe { super::shared(request.cast::<HostRequest>()) }
}

host_fn! {
    fn request_body_next(request: *const abi::HostRequest) -> FfiFuture<BodyChunk> =
        FfiFuture::new(async { BodyChunk::End });
    {
        // SAFETY: the module passes back the request it was given, or null.
        let Some(request) = (unsafe { request_arc(request) }) else {
            null_argument("request_body_next");
            return FfiFuture::new(async { BodyChunk::Error(RawSlice::from_str("400 no request")) });
        };
        if request.reader.streaming.is_none() {
            // Buffered: the whole body once, lent from the request itself
            // (which the module's reference keeps alive).
            let first = !request.reader.buffered_read.swap(true, std::sync::atomic::Ordering::AcqRel);
            let chunk = match first && !request.body.is_empty() {
                true => BodyChunk::Data(RawSlice::new(&request.body)),
                false => BodyChunk::End,
            };
            return FfiFuture::new(async move { chunk });
        }
        FfiFuture::new(async move {
            let Some(streaming) = &request.reader.streaming else { return BodyChunk::End };
            let mut state = streaming.lock().await;
            let (next, is_error) = match state.next().await {
                Next::Data(data) => (data, false),
                Next::End => return BodyChunk::End,
                Next::Error(message) => (Bytes::from(message), true),
            };
            // Lent until the next call: the bytes stay in the reader, which
            // the request (kept alive by the module's reference) owns.
            state.lent = next;
            let lent = RawSlice::new(&state.lent);
            match is_error {
                false => BodyChunk::Data(lent),
                true => BodyChunk::Error(lent),
            }
        })
    }
}

host_fn! {
    fn ws_accept(request: *const abi::HostRequest, protocol: RawSlice) -> *mut abi::HostSocket = std::ptr::null_mut();
    {
        // SAFETY: the module passes back the request it was given, or null.
        let Some(request) = (unsafe { request_ref(request) }) else {
            null_argument("ws_accept");
            return std::ptr::null_mut();
        };
        let Some(upgrade) = &request.upgrade else { return std::ptr::null_mut() };
        let Some(accept) = upgrade.accept.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return std::ptr::null_mut(); // accepted already
        };
        let (socket, accepted) = Socket::new(Arc::clone(&upgrade.app), text(protocol));
        *upgrade.socket.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&socket));
        if accept.send(accepted).is_err() {
            // The dispatcher gave up waiting (the request timed out).
            return std::ptr::null_mut();
        }
        Socket::into_raw(socket)
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
            PART_CONTEXT_PATH => RawSlice::from_str(r.host_app.context_path()),
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
