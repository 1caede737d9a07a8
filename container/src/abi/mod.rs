//! The only `unsafe` code of the container: loading a module, checking its
//! descriptor, calling it, and the host vtable it calls back into.
//!
//! Loading is a numbered sequence of checked steps (`load`); the checks
//! catch mistakes (a stale build, another SDK, `panic = "abort"`), not
//! malice: a module runs in-process and can do anything native code can.

#![allow(unsafe_code)]

mod host;
mod instance;
mod load;

pub use host::{
    Accepted, BodyReader, HostApp, HostRequest, HostResponse, Inbound, InstanceLimits, MAX_RESPONSE_HEADER_BYTES,
    MAX_RESPONSE_HEADERS, MigrationSpec, Outbound, RouteSpec, Socket, Upgrade, open_sockets,
};
pub use instance::{CallError, RawInstance, migrations_of};
pub use load::{LoadError, Module, ModuleInfo, loaded_images};
