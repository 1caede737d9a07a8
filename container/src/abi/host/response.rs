//! The response a handler writes, within limits: a module that goes past
//! them gets a 500 for that request, never an abort of the container.

use bytes::Bytes;
use crabcat_sdk::abi::{self, FfiBodyStream, RawSlice};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use super::{null_argument, slice};

/// Most response headers one response may carry.
pub const MAX_RESPONSE_HEADERS: usize = 1000;
/// Most bytes (names and values) of one response's headers.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;

/// The response a module writes.
pub struct HostResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// A body the module produces over time (then `body` is empty).
    pub stream: Option<FfiBodyStream>,
    /// Bytes of header names and values so far.
    header_bytes: usize,
    /// Largest body allowed.
    max_body: usize,
    /// Why the response cannot be sent (a limit the module went past).
    refused: Option<&'static str>,
}

impl HostResponse {
    pub(in crate::abi) fn new(max_body: usize) -> Self {
        HostResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Vec::new(),
            stream: None,
            header_bytes: 0,
            max_body,
            refused: None,
        }
    }

    /// `101 Switching Protocols`, for an accepted WebSocket handshake.
    pub fn switching_protocols() -> Self {
        HostResponse {
            status: StatusCode::SWITCHING_PROTOCOLS,
            ..Self::new(0)
        }
    }

    /// Why this response must not be sent, if a limit was exceeded.
    pub(in crate::abi) fn refused(&self) -> Option<&'static str> {
        self.refused
    }

    /// Appends to the body within its limit; past it, the response is
    /// refused and the body dropped.
    fn append_body(&mut self, bytes: &[u8]) {
        if self.refused.is_some() {
            return;
        }
        if self.body.len() + bytes.len() > self.max_body {
            self.refused = Some("response body larger than apps.NAME.max_response_bytes");
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(bytes);
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
            Some(r) => r.append_body(bytes),
            None => null_argument("response_body"),
        }
    }
}

host_fn! {
    fn response_stream(response: *mut abi::HostResponse, stream: FfiBodyStream) = ();
    {
        // SAFETY: the module passes back its sink, or null.
        match unsafe { response_mut(response) } {
            Some(r) => {
                r.body = Vec::new();
                r.stream = Some(stream);
            }
            // Dropping `stream` hands it back to the module's drop function.
            None => null_argument("response_stream"),
        }
    }
}
