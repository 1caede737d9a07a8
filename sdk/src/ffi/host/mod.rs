//! Safe wrappers around the host vtable, for the rest of the SDK.
//!
//! Here: the image's globals (the vtable and app handle `init` installs)
//! and the calls that need only them. The handles that own a host object
//! are in `request` ([`RequestHandle`]) and `socket` ([`SocketHandle`]);
//! the sinks the module writes into during `init`, `migrations` and a
//! request in `sinks`.

use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};
use std::future::Future;
use std::time::Duration;

use crate::abi::{FfiFuture, HostApp, HostVtable, RawSlice};

mod request;
mod sinks;
mod socket;

pub(crate) use request::{DbCall, RequestHandle};
pub use sinks::ResponseSink;
pub(crate) use sinks::{InitReport, MigrationReport};
pub(crate) use socket::{Received, SocketHandle};

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
