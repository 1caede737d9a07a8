//! The module's `extern "C"` entry points. Every one catches panics: a panic
//! never unwinds into the host (that would abort the container).

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::null_mut;
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use futures_util::FutureExt as _;

use super::host::{self, InitReport, MigrationReport, RequestHandle, ResponseSink};
use crate::abi::{
    ABI_MAJOR, ABI_MINOR, FLAG_PANIC_UNWIND, FfiFuture, HostApp, HostRequest, HostResponse, HostVtable, InitSink,
    LAYOUT_HASH, LOG_ERROR, MAGIC, MigrationSink, ModuleDescriptor, ModuleHeader, RawSlice, SERVICE_NO_ROUTE,
    SERVICE_OK, SERVICE_PANICKED,
};
use crate::app::{App, Started};
use crate::request::Request;

// SAFETY: a descriptor is immutable and its slices point to `'static`
// string literals, so sharing it between threads is sound.
unsafe impl Sync for ModuleDescriptor {}

/// Builds the descriptor of app `A`; used by [`export_app!`](crate::export_app).
#[doc(hidden)]
pub const fn descriptor<A: App>(name: &'static str, version: &'static str, unwind: bool) -> ModuleDescriptor {
    ModuleDescriptor {
        header: ModuleHeader {
            magic: MAGIC,
            abi_major: ABI_MAJOR,
            abi_minor: ABI_MINOR,
            header_size: size_of::<ModuleHeader>() as u32,
            descriptor_size: size_of::<ModuleDescriptor>() as u32,
            layout_hash: LAYOUT_HASH,
            flags: if unwind { FLAG_PANIC_UNWIND } else { 0 },
            name: RawSlice::from_str(name),
            version: RawSlice::from_str(version),
            sdk_version: RawSlice::from_str(env!("CARGO_PKG_VERSION")),
            rustc_version: RawSlice::from_str(env!("CRABCAT_RUSTC_VERSION")),
        },
        init: init::<A>,
        service: service::<A>,
        service_blocking: service_blocking::<A>,
        destroy: destroy::<A>,
        migrations: migrations::<A>,
    }
}

// SAFETY: the future's output is a host buffer that the receiving module
// alone reads and releases; the host does not touch it meanwhile.
unsafe impl Send for crate::abi::BufferHandle {}

/// The descriptor's `migrations`: reports `A::MIGRATIONS` to the host.
///
/// # Safety
/// As [`crate::abi::MigrationsFn`]: `host` is null or the host's vtable,
/// `sink` the sink of this call.
unsafe extern "C" fn migrations<A: App>(host: *const HostVtable, sink: *mut MigrationSink) {
    // SAFETY: the host passes its process-long vtable.
    let Some(host) = (unsafe { host.as_ref() }) else { return };
    if host.size < size_of::<HostVtable>() {
        return;
    }
    // SAFETY: `sink` is the sink of this call.
    let report = unsafe { MigrationReport::new(host, sink) };
    // Reading a constant and copying strings should not panic, but nothing
    // may unwind out of an `extern "C"` function: that aborts the process.
    let reported = catch_unwind(AssertUnwindSafe(|| {
        for m in A::MIGRATIONS {
            report.migration(m.version, m.description, "", m.sql);
            for (backend, sql) in [("postgres", m.postgres), ("sqlite", m.sqlite), ("mysql", m.mysql)] {
                if let Some(sql) = sql {
                    report.migration(m.version, m.description, backend, sql);
                }
            }
        }
    }));
    if let Err(payload) = reported {
        // The panic hook may not be installed yet (this runs before init):
        // say it on stderr. The host sees the migrations reported so far.
        eprintln!("crabcat-sdk: listing migrations panicked: {}", panic_message(payload));
    }
}

/// Sends panic messages (with their location) to the host log instead of
/// this image's stderr. Installed once per image.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| host::log(LOG_ERROR, "panic", &info.to_string())));
    });
}

/// The message of a panic payload; the payload is dropped without unwinding.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    // A payload whose destructor panics must not unwind out of here either.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    message
}

/// The descriptor's `init`: starts `A`.
///
/// # Safety
/// As [`crate::abi::InitFn`]: the vtable, app handle, config document and
/// sink the host passes are valid for the call (the vtable and app handle
/// for the life of the process).
unsafe extern "C" fn init<A: App>(
    host: *const HostVtable,
    app: *const HostApp,
    config: RawSlice,
    sink: *mut InitSink,
) -> *mut c_void {
    // SAFETY: the host passes its process-long vtable (contract of `InitFn`).
    let Some(host) = (unsafe { host.as_ref() }) else {
        return null_mut();
    };
    if host.size < size_of::<HostVtable>() {
        return null_mut(); // an older host: its vtable lacks slots we would call
    }
    // SAFETY: `host` and `app` come straight from the host's `init` call.
    unsafe { host::install(host, app) };
    // SAFETY: `sink` is the sink of this call.
    let report = unsafe { InitReport::new(host, sink) };
    // SAFETY: `config` is valid for the duration of this call.
    let config = unsafe { host::bytes(config) };
    install_panic_hook();
    match catch_unwind(AssertUnwindSafe(|| Started::<A>::start(config))) {
        Ok(Ok(started)) => {
            for (method, pattern, flags, max_body) in started.route_table() {
                report.route(method, pattern, flags, max_body);
            }
            Box::into_raw(Box::new(started)).cast()
        }
        Ok(Err(error)) => {
            report.error(&error.to_string());
            null_mut()
        }
        Err(payload) => {
            report.error(&format!("init panicked: {}", panic_message(payload)));
            null_mut()
        }
    }
}

/// The descriptor's `service`: calls an async route of `A`.
///
/// # Safety
/// As [`crate::abi::ServiceFn`]: `instance` came from this image's `init`;
/// the request and response sink stay valid until the returned future is
/// finished or dropped.
unsafe extern "C" fn service<A: App>(
    instance: *const c_void,
    route: u32,
    request: *mut HostRequest,
    response: *mut HostResponse,
) -> FfiFuture<u32> {
    let Some((started, request, sink)) =
        // SAFETY: forwarded from the host's `service` call.
        (unsafe { take_call::<A>(instance, request, response) })
    else {
        return FfiFuture::new(async { SERVICE_NO_ROUTE });
    };
    match catch_unwind(AssertUnwindSafe(|| started.call_async(route, request, sink))) {
        Ok(Some(future)) => future,
        Ok(None) => FfiFuture::new(async { SERVICE_NO_ROUTE }),
        Err(payload) => {
            drop(panic_message(payload));
            FfiFuture::new(async { SERVICE_PANICKED })
        }
    }
}

/// The FFI future of one async handler call: polls `future` with panics
/// caught, then writes its response to `sink`.
pub(crate) fn respond<F>(future: F, sink: ResponseSink) -> FfiFuture<u32>
where
    F: std::future::Future + Send + 'static,
    F::Output: crate::IntoResponse,
{
    FfiFuture::new(async move {
        match AssertUnwindSafe(future).catch_unwind().await {
            Ok(response) => {
                sink.write(crate::IntoResponse::into_response(response));
                SERVICE_OK
            }
            Err(payload) => {
                drop(panic_message(payload));
                SERVICE_PANICKED
            }
        }
    })
}

/// The descriptor's `service_blocking`: calls a blocking route of `A`.
///
/// # Safety
/// As [`crate::abi::ServiceBlockingFn`]: `instance` came from this image's
/// `init`; the request and response sink are valid for the call.
unsafe extern "C" fn service_blocking<A: App>(
    instance: *const c_void,
    route: u32,
    request: *mut HostRequest,
    response: *mut HostResponse,
) -> u32 {
    // SAFETY: forwarded from the host's `service_blocking` call.
    let Some((started, request, sink)) = (unsafe { take_call::<A>(instance, request, response) }) else {
        return SERVICE_NO_ROUTE;
    };
    match catch_unwind(AssertUnwindSafe(|| started.call_blocking(route, request))) {
        Ok(Some(response)) => {
            sink.write(response);
            SERVICE_OK
        }
        Ok(None) => SERVICE_NO_ROUTE,
        Err(payload) => {
            drop(panic_message(payload));
            SERVICE_PANICKED
        }
    }
}

/// Turns the raw arguments of a service call into safe values.
///
/// # Safety
/// The arguments must be those of a host `service` call: `instance` returned
/// by this image's `init` and kept alive by the host until the call (and its
/// future) is over, `request` owned by the callee, `response` valid as long.
unsafe fn take_call<'a, A: App>(
    instance: *const c_void,
    request: *mut HostRequest,
    response: *mut HostResponse,
) -> Option<(&'a Started<A>, Request, ResponseSink)> {
    let host = host::vtable()?;
    // SAFETY: by the contract above; the request becomes ours to release.
    let request = unsafe { RequestHandle::from_raw(host, request) }?;
    // SAFETY: `instance` is a live `Started<A>` from `init` (see above).
    let started = unsafe { instance.cast::<Started<A>>().as_ref() }?;
    // SAFETY: `response` is this call's sink (see above).
    let sink = unsafe { ResponseSink::new(host, response) };
    Some((started, Request::from_handle(request), sink))
}

/// The descriptor's `destroy`: drops the instance.
///
/// # Safety
/// As [`crate::abi::DestroyFn`]: `instance` came from this image's `init`,
/// no call uses it any more, and it is destroyed once.
unsafe extern "C" fn destroy<A: App>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // SAFETY: `instance` came from `Box::into_raw` in `init`, and the host
    // calls `destroy` exactly once, after every request on it has finished.
    let started = unsafe { Box::from_raw(instance.cast::<Started<A>>()) };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || started.destroy())) {
        host::log(
            LOG_ERROR,
            "crabcat_sdk",
            &format!("destroy panicked: {}", panic_message(payload)),
        );
    }
}
