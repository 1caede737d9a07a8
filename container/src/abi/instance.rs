//! Calling a module: `init`, `service` and `destroy` behind a safe type.

use core::ffi::c_void;
use std::ptr::NonNull;
use std::sync::Arc;

use crabcat_sdk::abi::{RawSlice, SERVICE_NO_ROUTE, SERVICE_OK, SERVICE_PANICKED};

use super::host::{self, HostApp, HostRequest, HostResponse, InitSink, MigrationSink, MigrationSpec, RouteSpec};
use super::load::Module;

/// The migrations a checked module declares. Blocking (a module call): run
/// it on a blocking thread.
pub fn migrations_of(module: &Module) -> Vec<MigrationSpec> {
    let mut sink = MigrationSink::default();
    let migrations = module.descriptor.migrations;
    // SAFETY: the descriptor passed every check, so `migrations` has the
    // contract's signature; the vtable is a static and `sink` outlives the call.
    unsafe { migrations(host::vtable(), (&mut sink as *mut MigrationSink).cast()) };
    sink.migrations
}

/// Why a call into a module produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The handler panicked (the module logged the panic message).
    #[error("handler panicked")]
    Panicked,
    /// The module does not know the route number the host sent.
    #[error("module has no route number {0}")]
    NoRoute(u32),
    /// A result code this container does not know.
    #[error("module returned unknown result code {0}")]
    Unknown(u32),
    /// The response went past a limit (header count or size).
    #[error("response refused: {0}")]
    BadResponse(&'static str),
}

/// A live instance inside a module: what `init` returned.
///
/// Dropping it calls the module's `destroy`, so `destroy` runs exactly once
/// per successful `init`, and only after every call borrowing the instance
/// is over (calls borrow `&self`; hold it in an `Arc` and drop the last
/// clone on a blocking thread).
pub struct RawInstance {
    module: Arc<Module>,
    ptr: NonNull<c_void>,
    app: &'static HostApp,
}

// SAFETY: the SDK requires `App: Send + Sync`, and the instance pointer is
// only used through the module's thread-safe entry points.
unsafe impl Send for RawInstance {}
// SAFETY: see `Send`.
unsafe impl Sync for RawInstance {}

impl RawInstance {
    /// Calls the module's `init` with the JSON init document. Blocking: run
    /// it on a blocking thread.
    ///
    /// # Errors
    /// The message the module reported (its `init` returned an error or
    /// panicked).
    pub fn init(module: Arc<Module>, app: &'static HostApp, document: &[u8]) -> Result<(Self, Vec<RouteSpec>), String> {
        let mut sink = InitSink::default();
        let init = module.descriptor.init;
        // SAFETY: the descriptor passed every check in `Module::load`, so
        // `init` has the contract's signature; the vtable is a static, `app`
        // is leaked, `document` and `sink` outlive the call.
        let ptr = unsafe {
            init(
                host::vtable(),
                app.abi_ptr(),
                RawSlice::new(document),
                (&mut sink as *mut InitSink).cast(),
            )
        };
        match NonNull::new(ptr) {
            Some(ptr) => Ok((RawInstance { module, ptr, app }, sink.routes)),
            None => Err(sink.error.unwrap_or_else(|| "init failed without a reason".to_owned())),
        }
    }

    /// The host side of this instance (its spawned tasks).
    pub fn host_app(&self) -> &'static HostApp {
        self.app
    }

    /// An empty response for a call of this instance (with its body limit).
    pub fn response(&self) -> HostResponse {
        HostResponse::new(self.app.limits().max_response_bytes)
    }

    /// Runs route `route` (an async handler) on `request`; the module
    /// writes its answer into `response` (made by [`Self::response`]).
    ///
    /// `response` is the caller's, borrowed rather than returned: every
    /// level of the call would move a returned response (some 200 bytes)
    /// once more, for every request.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn call(
        &self,
        route: u32,
        request: Arc<HostRequest>,
        response: &mut HostResponse,
    ) -> Result<(), CallError> {
        let request = Arc::into_raw(request).cast_mut().cast();
        let service = self.module.descriptor.service;
        let sink = (&raw mut *response).cast();
        // The descriptor passed `Module::load`'s checks; the module releases
        // its reference to the request. `response` and the instance are
        // borrowed for this whole future, which owns the module's.
        // SAFETY: so the sink stays put and alive while the module may write.
        let future = unsafe { service(self.ptr.as_ptr(), route, request, sink) };
        let code = self.app.watch().watched(future).await;
        outcome(code, route)?;
        refusal(response)
    }

    /// Runs route `route` (a blocking handler) on `request`, on this thread.
    ///
    /// # Errors
    /// See [`CallError`].
    pub fn call_blocking(&self, route: u32, request: Arc<HostRequest>) -> Result<HostResponse, CallError> {
        let mut response = HostResponse::new(self.app.limits().max_response_bytes);
        let request = Arc::into_raw(request).cast_mut().cast();
        let service = self.module.descriptor.service_blocking;
        // SAFETY: as in `call`; the call is synchronous, so every pointer
        // outlives it.
        let code = unsafe {
            service(
                self.ptr.as_ptr(),
                route,
                request,
                (&mut response as *mut HostResponse).cast(),
            )
        };
        outcome(code, route)?;
        checked(response)
    }
}

fn checked(response: HostResponse) -> Result<HostResponse, CallError> {
    refusal(&response).map(|()| response)
}

/// Why `response` cannot be sent, if a limit the module went past says so.
fn refusal(response: &HostResponse) -> Result<(), CallError> {
    match response.refused() {
        Some(reason) => Err(CallError::BadResponse(reason)),
        None => Ok(()),
    }
}

fn outcome(code: u32, route: u32) -> Result<(), CallError> {
    match code {
        SERVICE_OK => Ok(()),
        SERVICE_PANICKED => Err(CallError::Panicked),
        SERVICE_NO_ROUTE => Err(CallError::NoRoute(route)),
        other => Err(CallError::Unknown(other)),
    }
}

impl Drop for RawInstance {
    fn drop(&mut self) {
        let destroy = self.module.descriptor.destroy;
        // SAFETY: `ptr` came from this module's `init`; `drop` runs once and
        // no call borrows `self` any more.
        unsafe { destroy(self.ptr.as_ptr()) }
    }
}
