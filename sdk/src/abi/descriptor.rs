//! What a module exports: the header the container checks first, the
//! descriptor [`ENTRY_SYMBOL`] points to, and its entry points' signatures.

use core::ffi::c_void;

#[cfg(doc)] // for the doc links
use super::{ABI_MAJOR, ABI_MINOR, ENTRY_SYMBOL, LAYOUT_HASH, MAGIC};
use super::{FfiFuture, HostApp, HostRequest, HostResponse, HostVtable, InitSink, MigrationSink, RawSlice};

/// Reports the module's migrations, each with [`HostVtable::migration`], in
/// order. Called on a blocking thread before `init`; does nothing else.
pub type MigrationsFn = unsafe extern "C" fn(host: *const HostVtable, sink: *mut MigrationSink);

/// Creates the app instance.
///
/// Called once per instance on a blocking thread. `config` is a JSON
/// document (`{"name", "context_path", "config", "max_log_level"}`) valid
/// only during the call. On success the module has registered its routes with
/// [`HostVtable::route`] and returns a non-null instance pointer, owned by the
/// module and given back in [`DestroyFn`]. On failure it reports the reason
/// with [`HostVtable::init_error`] and returns null.
pub type InitFn = unsafe extern "C" fn(
    host: *const HostVtable,
    app: *const HostApp,
    config: RawSlice,
    sink: *mut InitSink,
) -> *mut c_void;

/// Starts one request on an async route and returns the future computing it.
///
/// `instance` stays valid until the future is dropped; `request` becomes
/// the module's (see [`HostRequest`]); `response` is valid until the future
/// completes or is dropped. The future yields one of the `SERVICE_*` codes.
pub type ServiceFn = unsafe extern "C" fn(
    instance: *const c_void,
    route: u32,
    request: *mut HostRequest,
    response: *mut HostResponse,
) -> FfiFuture<u32>;

/// Runs one request on a blocking route, on a host blocking thread. Same
/// ownership as [`ServiceFn`]; returns a `SERVICE_*` code.
pub type ServiceBlockingFn = unsafe extern "C" fn(
    instance: *const c_void,
    route: u32,
    request: *mut HostRequest,
    response: *mut HostResponse,
) -> u32;

/// Destroys the instance. Called exactly once per successful [`InitFn`], on
/// a blocking thread, after every request on it has finished.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// The part of the descriptor that never changes across ABI versions: the
/// container reads it, and nothing else, before deciding to trust a module.
/// All slices point to `'static` data in the module.
#[repr(C)]
pub struct ModuleHeader {
    /// Always [`MAGIC`].
    pub magic: u64,
    /// The module's [`ABI_MAJOR`].
    pub abi_major: u32,
    /// The module's [`ABI_MINOR`].
    pub abi_minor: u32,
    /// `size_of::<ModuleHeader>()` in the module.
    pub header_size: u32,
    /// `size_of::<ModuleDescriptor>()` in the module.
    pub descriptor_size: u32,
    /// The module's [`LAYOUT_HASH`].
    pub layout_hash: u64,
    /// `FLAG_*` bits.
    pub flags: u64,
    /// The crate name of the module.
    pub name: RawSlice,
    /// The crate version of the module.
    pub version: RawSlice,
    /// The version of `crabcat-sdk` it was built with.
    pub sdk_version: RawSlice,
    /// `rustc --version` of the compiler that built the SDK.
    pub rustc_version: RawSlice,
}

/// What [`ENTRY_SYMBOL`] returns a pointer to: a `static` in the module,
/// valid for as long as the library stays loaded (the host never unloads).
#[repr(C)]
pub struct ModuleDescriptor {
    /// Checked before anything else is touched.
    pub header: ModuleHeader,
    /// See [`InitFn`].
    pub init: InitFn,
    /// See [`ServiceFn`].
    pub service: ServiceFn,
    /// See [`ServiceBlockingFn`].
    pub service_blocking: ServiceBlockingFn,
    /// See [`DestroyFn`].
    pub destroy: DestroyFn,
    /// See [`MigrationsFn`].
    pub migrations: MigrationsFn,
}

/// The signature of [`ENTRY_SYMBOL`].
pub type EntryFn = extern "C" fn() -> *const ModuleDescriptor;
