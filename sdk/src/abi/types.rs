//! The plain types that cross the boundary: borrowed slices, the host's
//! opaque handles, body chunks, WebSocket events and reply buffers.

#[cfg(doc)] // for the doc links
use super::{FfiBodyStream, HostVtable, MigrationsFn, ServiceFn, wire};

/// A borrowed run of bytes (often UTF-8).
///
/// Ownership: never owns. Who hands one out says how long it stays valid; a
/// `null` pointer means "absent" where a function documents it, and is
/// otherwise only allowed with `len == 0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawSlice {
    /// First byte, or null.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl RawSlice {
    /// The "absent" value: a null pointer and no bytes.
    pub const NULL: RawSlice = RawSlice {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// Borrows `bytes`; valid as long as they are.
    pub const fn new(bytes: &[u8]) -> Self {
        RawSlice {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// Borrows a string; valid as long as it is.
    pub const fn from_str(s: &str) -> Self {
        Self::new(s.as_bytes())
    }

    /// `true` for the "absent" value.
    pub fn is_null(&self) -> bool {
        self.ptr.is_null()
    }
}

/// Opaque host object describing one deployed app instance. Valid for the
/// whole life of the process (the host never frees it).
#[repr(C)]
pub struct HostApp {
    _private: [u8; 0],
}

/// Opaque host object holding one HTTP request. Allocated by the host and
/// handed to the module by [`ServiceFn`]; the module owns it and must give it
/// back exactly once with [`HostVtable::request_release`].
#[repr(C)]
pub struct HostRequest {
    _private: [u8; 0],
}

/// Opaque host object for one accepted WebSocket connection. Made by
/// [`HostVtable::ws_accept`]; the module owns it and gives it back exactly
/// once with [`HostVtable::ws_release`] (which closes the connection if it
/// is still open).
#[repr(C)]
pub struct HostSocket {
    _private: [u8; 0],
}

/// One step of a body that crosses the boundary as it is produced: the
/// response body a module streams ([`FfiBodyStream`]) and the request body
/// it reads ([`HostVtable::request_body_next`]).
#[repr(C, u8)]
#[derive(Clone, Copy, Debug)]
pub enum BodyChunk {
    /// More bytes. Lent by the side that produced them until its next call
    /// (the next poll, the next `request_body_next`) or the release of the
    /// object; the receiver copies what it keeps.
    Data(RawSlice),
    /// The body is complete.
    End,
    /// The body cannot be completed; the message says why (lent as `Data`).
    /// A response ends abruptly (the client sees a cut-off body), a request
    /// body reader reports an error.
    Error(RawSlice),
}

/// What [`HostVtable::ws_recv`] yields. Slices are lent by the host until
/// the next `ws_recv` on the socket or its release.
#[repr(C, u8)]
#[derive(Clone, Copy, Debug)]
pub enum WsEvent {
    /// A complete text message (valid UTF-8: the host checked it).
    Text(RawSlice),
    /// A complete binary message.
    Binary(RawSlice),
    /// A message published to a hub topic this socket subscribed to.
    Hub {
        /// The topic it was published to.
        topic: RawSlice,
        /// What was published.
        payload: RawSlice,
    },
    /// The connection is closed (by the client, the host or the module):
    /// the close code (1005 when the client sent none) and reason. Every
    /// later `ws_recv` yields it again.
    Closed {
        /// The WebSocket close code.
        code: u16,
        /// The close reason (may be empty).
        reason: RawSlice,
    },
}

/// Opaque host object the module writes its response into. Owned by the
/// host; valid until the service future completes or is dropped.
#[repr(C)]
pub struct HostResponse {
    _private: [u8; 0],
}

/// Opaque host object collecting what `init` reports: routes and an error
/// message. Owned by the host; valid only during the `init` call.
#[repr(C)]
pub struct InitSink {
    _private: [u8; 0],
}

/// Opaque host object collecting a module's migrations. Owned by the host;
/// valid only during the [`MigrationsFn`] call.
#[repr(C)]
pub struct MigrationSink {
    _private: [u8; 0],
}

/// A database reply (see [`wire`]): `len` bytes at `ptr`, allocated by the
/// host. The module reads them and gives the whole handle back exactly once
/// with [`HostVtable::buffer_release`].
#[repr(C)]
pub struct BufferHandle {
    /// The bytes, or null if the host could not even start the operation.
    pub ptr: *mut u8,
    /// How many bytes are valid.
    pub len: usize,
    /// The host's own bookkeeping; the module passes it back unchanged.
    pub capacity: usize,
}
