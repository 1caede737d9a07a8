//! The host vtable: the services a module calls back into, and the host
//! objects behind the opaque ABI pointers. Every callback is declared with
//! [`host_fn!`]: no function here may unwind into a module, and none
//! trusts a pointer it was given to be non-null.
//!
//! * `request`: the request a handler reads (`HostRequest`).
//! * `response`: the response it writes (`HostResponse`), with its limits.
//! * `db`: database calls, translated between the wire format and `db`.
//! * `init`: what `init` and `migrations` report (routes, migrations).
//! * `runtime`: log, sleep, spawn (`HostApp`).
//! * `session`: the request's HTTP session.

use std::borrow::Cow;

use crabcat_sdk::abi::{HostVtable, RawSlice};

use super::load::slice;

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
        ///
        /// # Safety
        /// Called by a module through the vtable, with the arguments the
        /// contract (`crabcat_sdk::abi::HostVtable`) describes. Null pointers
        /// are refused; other invalid pointers cannot be detected.
        pub(super) unsafe extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || $body)) {
                Ok(value) => value,
                Err(_) => {
                    $crate::abi::host::guard_failed(stringify!($name), "panicked in the host (see the panic message above)");
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

mod db;
mod init;
mod request;
mod response;
mod runtime;
mod session;
mod socket;

pub(super) use init::{InitSink, MigrationSink};
pub use init::{MigrationSpec, RouteSpec};
pub use request::{BodyReader, HostRequest, Upgrade};
pub use response::{HostResponse, MAX_RESPONSE_HEADER_BYTES, MAX_RESPONSE_HEADERS};
pub use runtime::{HostApp, InstanceLimits};
pub use session::SessionCell;
pub use socket::{Accepted, Inbound, Outbound, Socket, open_sockets};

/// The vtable handed to every module; a static, valid for the process.
pub(super) static VTABLE: HostVtable = HostVtable {
    size: size_of::<HostVtable>(),
    log: runtime::host_log,
    request_release: request::request_release,
    request_part: request::request_part,
    request_header: request::request_header,
    request_header_at: request::request_header_at,
    request_param_at: request::request_param_at,
    response_status: response::response_status,
    response_header: response::response_header,
    response_body: response::response_body,
    route: init::init_route,
    init_error: init::init_error,
    sleep: runtime::host_sleep,
    spawn: runtime::host_spawn,
    db: db::host_db,
    buffer_release: db::buffer_release,
    tx_release: db::tx_release,
    migration: init::host_migration,
    response_stream: response::response_stream,
    request_body_next: request::request_body_next,
    ws_accept: request::ws_accept,
    ws_recv: socket::ws_recv,
    ws_send: socket::ws_send,
    ws_close: socket::ws_close,
    ws_release: socket::ws_release,
    hub_subscribe: socket::hub_subscribe,
    hub_unsubscribe: socket::hub_unsubscribe,
    hub_publish: socket::hub_publish,
    session_load: session::session_load,
    session_get: session::session_get,
    session_set: session::session_set,
    session_renew: session::session_renew,
    session_invalidate: session::session_invalidate,
};

/// A reference of the host's own to an object it lent a module as an
/// `Arc` (a request, a socket); `None` for null.
///
/// # Safety
/// `ptr` must be null or come from `Arc::into_raw`, with the module's
/// reference still alive.
unsafe fn shared<T>(ptr: *const T) -> Option<std::sync::Arc<T>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: by the caller, a live `Arc` allocation; this adds a reference.
    unsafe {
        std::sync::Arc::increment_strong_count(ptr);
        Some(std::sync::Arc::from_raw(ptr))
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

pub(super) fn vtable() -> *const HostVtable {
    &VTABLE
}

#[cfg(test)]
mod tests {
    use std::ptr::{null, null_mut};

    use super::*;
    use crabcat_sdk::abi::{self, LOG_INFO, PART_PATH};

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
            (VTABLE.response_body)(null_mut(), name, 0);
            (VTABLE.route)(null_mut(), name, name, 0, 0);
            (VTABLE.ws_close)(null_mut(), 1000, name);
            (VTABLE.ws_release)(null_mut());
            (VTABLE.hub_unsubscribe)(null_mut(), name);
            assert!(!(VTABLE.hub_subscribe)(null_mut(), name, 0));
            assert!((VTABLE.ws_accept)(null(), name).is_null());
            assert_eq!((VTABLE.hub_publish)(null(), name, name), 0);
            (VTABLE.init_error)(null_mut(), name);
            (VTABLE.migration)(null_mut(), 1, name, name, name);
            (VTABLE.tx_release)(null(), 1);
            (VTABLE.request_release)(null_mut());
            (VTABLE.log)(null(), LOG_INFO, name, name);
            assert!((VTABLE.session_get)(null(), name).ptr.is_null());
            assert_eq!((VTABLE.session_set)(null(), name, name), abi::SESSION_NOT_LOADED);
            assert_eq!((VTABLE.session_renew)(null()), abi::SESSION_NOT_LOADED);
            assert_eq!((VTABLE.session_invalidate)(null()), abi::SESSION_NOT_LOADED);
        }
    }

    #[test]
    fn response_headers_past_the_limits_refuse_the_response() {
        let mut response = HostResponse::new(usize::MAX);
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

        let mut response = HostResponse::new(usize::MAX);
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
