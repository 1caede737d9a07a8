//! The module ABI: the `#[repr(C)]` contract between the container and a module.
//!
//! Both sides compile against these definitions; nothing else crosses the
//! boundary. The rules, measured in `docs/src/abi.md` ("Measured facts"):
//!
//! * A module exports one symbol, [`ENTRY_SYMBOL`], a function that does no
//!   work and returns a pointer to a `static` [`ModuleDescriptor`].
//! * The container checks, in order, [`MAGIC`], [`ABI_MAJOR`],
//!   [`LAYOUT_HASH`], the struct sizes and [`FLAG_PANIC_UNWIND`] before it
//!   calls any function pointer.
//! * [`LAYOUT_HASH`] covers every field of every struct, so any change to
//!   the contract, even an appended field, makes the container refuse
//!   modules built before it: rebuild them. Once released, reordering,
//!   removing or retyping a field also needs a new major version and a new
//!   symbol name; before the first release (0.x) version 1 may still change,
//!   and the layout hash alone refuses modules built before a change. The size
//!   fields and [`ABI_MINOR`] are there so that a later container can accept
//!   older modules whose structs are a prefix of its own; this one does not.
//! * Memory is never freed on the other side of the boundary from where it
//!   was allocated. Requests are host memory that the module releases through
//!   [`HostVtable::request_release`]; responses, routes and errors are written
//!   by the module into host-owned sinks through the vtable. The one
//!   exception is data that is never freed at all: a header value marked
//!   [`HEADER_VALUE_STATIC`] or a body marked [`BODY_STATIC`] is `'static`
//!   in the module, and the host keeps a reference to it instead of a copy
//!   (module images are never unloaded).
//!
//! App authors never touch this module: the SDK's safe API and
//! [`export_app!`](crate::export_app) hide it.
//!
//! The definitions are split by kind, all re-exported here: `constants`
//! (magic, versions, flags, codes), `types` (slices, opaque handles, the
//! enums and buffers that cross), `descriptor` (what a module exports) and
//! `vtable` (what the host lends).

mod constants;
mod descriptor;
mod layout;
mod types;
mod vtable;

pub mod wire;

pub use constants::*;
pub use descriptor::{
    DestroyFn, EntryFn, InitFn, MigrationsFn, ModuleDescriptor, ModuleHeader, ServiceBlockingFn, ServiceFn,
};
// The future's shapes are part of the contract; their implementation is
// unsafe code, so it lives with the rest in `ffi`.
pub use crate::ffi::future::{FfiContext, FfiFuture, FfiPoll, FfiWaker, FfiWakerVtable};
pub use crate::ffi::stream::{Chunk, FfiBodyStream};
#[doc(hidden)]
pub use layout::layout_field;
pub use layout::{CONTRACT, FieldLayout, LAYOUT_HASH, TypeLayout, layout_hash};
pub use types::{
    BodyChunk, BufferHandle, HostApp, HostRequest, HostResponse, HostSocket, InitSink, MigrationSink, RawSlice, WsEvent,
};
pub use vtable::HostVtable;
