//! The host-owned sinks the module writes into: routes and the init error
//! during `init`, migrations before it, and a request's response.

use std::borrow::Cow;

use super::log;
use crate::abi::{BODY_STATIC, HEADER_VALUE_STATIC, HostResponse, HostVtable, InitSink, MigrationSink, RawSlice};
use crate::response::Body;

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
                // A borrowed body is `'static`: the host need not copy it.
                Body::Full(Cow::Borrowed(body)) => {
                    (self.host.response_body)(self.raw, RawSlice::new(body), BODY_STATIC)
                }
                Body::Full(Cow::Owned(body)) => (self.host.response_body)(self.raw, RawSlice::new(&body), 0),
                Body::Stream(stream) => (self.host.response_stream)(self.raw, stream),
            }
        }
    }
}
