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
    /// The whole body; a `'static` one from the module is not copied.
    pub body: Bytes,
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
            body: Bytes::new(),
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
    /// refused and the body dropped. The first part is kept as it is when
    /// `'static` (`Bytes::from_static`), else copied once; a second part
    /// (the SDK writes one) joins them in a new buffer.
    fn append_body(&mut self, bytes: Bytes) {
        if self.refused.is_some() {
            return;
        }
        if self.body.len() + bytes.len() > self.max_body {
            self.refused = Some("response body larger than apps.NAME.max_response_bytes");
            self.body = Bytes::new();
            return;
        }
        self.body = match self.body.is_empty() {
            true => bytes,
            false => [&self.body[..], &bytes[..]].concat().into(),
        };
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

/// `name` as a header name. The names handlers set most are matched
/// first, as written by the SDK (lower case): a comparison instead of
/// `HeaderName::from_bytes`'s validation and lookup.
fn header_name(name: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
    use http::header;
    Ok(match name {
        b"content-type" => header::CONTENT_TYPE,
        b"server" => header::SERVER,
        b"location" => header::LOCATION,
        b"cache-control" => header::CACHE_CONTROL,
        b"set-cookie" => header::SET_COOKIE,
        b"etag" => header::ETAG,
        b"last-modified" => header::LAST_MODIFIED,
        b"vary" => header::VARY,
        _ => return HeaderName::from_bytes(name),
    })
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
        match (header_name(name), value) {
            (Ok(name), Ok(value)) => r.append_header(name, value),
            _ => false,
        }
    }
}

host_fn! {
    fn response_body(response: *mut abi::HostResponse, bytes: RawSlice, flags: u32) = ();
    {
        // SAFETY: the module passes back its sink, or null.
        let Some(r) = (unsafe { response_mut(response) }) else {
            return null_argument("response_body");
        };
        let bytes = if flags & abi::BODY_STATIC != 0 {
            // SAFETY: the module marks `'static` data only (the SDK: a
            // borrowed `Cow<'static, [u8]>`), and module images are never
            // unloaded, so it lives as long as the process.
            Bytes::from_static(unsafe { slice(bytes) })
        } else {
            // SAFETY: valid for the call; copied here.
            Bytes::copy_from_slice(unsafe { slice(bytes) })
        };
        r.append_body(bytes);
    }
}

host_fn! {
    fn response_stream(response: *mut abi::HostResponse, stream: FfiBodyStream) = ();
    {
        // SAFETY: the module passes back its sink, or null.
        match unsafe { response_mut(response) } {
            Some(r) => {
                r.body = Bytes::new();
                r.stream = Some(stream);
            }
            // Dropping `stream` hands it back to the module's drop function.
            None => null_argument("response_stream"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_names_match_what_validation_would_give() {
        for name in [
            "content-type",
            "server",
            "location",
            "cache-control",
            "set-cookie",
            "etag",
            "last-modified",
            "vary",
            "x-custom",
            "Content-Type",
        ] {
            assert_eq!(
                header_name(name.as_bytes()).unwrap(),
                HeaderName::from_bytes(name.as_bytes()).unwrap()
            );
        }
        assert!(header_name(b"bad name").is_err());
    }

    #[test]
    fn a_second_body_part_is_appended_and_the_limit_holds() {
        let mut r = HostResponse::new(8);
        r.append_body(Bytes::from_static(b"abc"));
        r.append_body(Bytes::copy_from_slice(b"def"));
        assert_eq!(&r.body[..], b"abcdef");
        assert!(r.refused().is_none());
        r.append_body(Bytes::from_static(b"ghi"));
        assert!(r.refused().is_some());
        assert!(r.body.is_empty());
    }
}
