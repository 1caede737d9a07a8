//! The request a handler reads: its parts, headers and parameters, lent
//! to the module for the call.

use std::sync::Arc;

use bytes::Bytes;
use crabcat_sdk::abi::{self, PART_BODY, PART_CONTEXT_PATH, PART_METHOD, PART_PATH, PART_QUERY, RawSlice};
use http::header::HeaderName;
use http::{HeaderMap, Method, Uri};

use super::{null_argument, slice};
use crate::db::RequestScope;

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
