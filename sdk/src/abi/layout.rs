//! The layout fingerprint: a compile-time hash of the name, type, offset and
//! size of every field of every ABI struct, plus the size and alignment of
//! the generic types that cross the boundary.
//!
//! A version number alone is not enough (`docs/src/abi.md`, "Measured facts", 2): a module
//! built against a changed struct with the same version calls the wrong
//! vtable slot and hangs. The hash catches that at load time.

use core::mem::{align_of, size_of};

use super::{
    BodyChunk, BufferHandle, FfiBodyStream, FfiContext, FfiFuture, FfiPoll, FfiWaker, FfiWakerVtable, HostVtable,
    ModuleDescriptor, ModuleHeader, RawSlice, WsEvent,
};

/// One field of a [`TypeLayout`].
#[derive(Debug)]
pub struct FieldLayout {
    /// Field name.
    pub name: &'static str,
    /// Field type as written.
    pub ty: &'static str,
    /// Byte offset in the struct.
    pub offset: usize,
    /// Size of the field's type.
    pub size: usize,
}

/// The layout of one type that crosses the boundary.
#[derive(Debug)]
pub struct TypeLayout {
    /// Type name.
    pub name: &'static str,
    /// `size_of`.
    pub size: usize,
    /// `align_of`.
    pub align: usize,
    /// Every field in declaration order; empty for generic types.
    pub fields: &'static [FieldLayout],
}

/// Describes a struct of this crate. The generated check function fails to
/// compile if a field is missing from the list or has another type, so the
/// listing cannot drift from the definition.
#[macro_export]
#[doc(hidden)]
macro_rules! __type_layout {
    ($t:ident { $($f:ident : $ft:ty),* $(,)? }) => {{
        #[allow(dead_code, clippy::type_complexity)]
        fn check(value: $t) {
            let $t { $($f),* } = value;
            $( let _: $ft = $f; )*
        }
        $crate::abi::TypeLayout {
            name: stringify!($t),
            size: ::core::mem::size_of::<$t>(),
            align: ::core::mem::align_of::<$t>(),
            fields: &[$($crate::abi::layout_field(
                stringify!($f),
                stringify!($ft),
                ::core::mem::offset_of!($t, $f),
                ::core::mem::size_of::<$ft>(),
            )),*],
        }
    }};
}

#[doc(hidden)]
pub const fn layout_field(name: &'static str, ty: &'static str, offset: usize, size: usize) -> FieldLayout {
    FieldLayout { name, ty, offset, size }
}

/// A generic type, by size and alignment only (the field macro takes no
/// generics); its parts, such as `FfiContext`, are listed by field.
const fn sized<T>(name: &'static str) -> TypeLayout {
    TypeLayout {
        name,
        size: size_of::<T>(),
        align: align_of::<T>(),
        fields: &[],
    }
}

/// Every type of the contract.
pub const CONTRACT: &[TypeLayout] = &[
    crate::__type_layout!(RawSlice { ptr: *const u8, len: usize }),
    crate::__type_layout!(ModuleHeader {
        magic: u64,
        abi_major: u32,
        abi_minor: u32,
        header_size: u32,
        descriptor_size: u32,
        layout_hash: u64,
        flags: u64,
        name: RawSlice,
        version: RawSlice,
        sdk_version: RawSlice,
        rustc_version: RawSlice,
    }),
    crate::__type_layout!(ModuleDescriptor {
        header: ModuleHeader,
        init: super::InitFn,
        service: super::ServiceFn,
        service_blocking: super::ServiceBlockingFn,
        destroy: super::DestroyFn,
        migrations: super::MigrationsFn,
    }),
    crate::__type_layout!(HostVtable {
        size: usize,
        log: unsafe extern "C" fn(*const super::HostApp, u32, RawSlice, RawSlice),
        request_release: unsafe extern "C" fn(*mut super::HostRequest),
        request_part: unsafe extern "C" fn(*const super::HostRequest, u32) -> RawSlice,
        request_header: unsafe extern "C" fn(*const super::HostRequest, RawSlice) -> RawSlice,
        request_header_at: unsafe extern "C" fn(*const super::HostRequest, usize, *mut RawSlice, *mut RawSlice) -> bool,
        request_param_at: unsafe extern "C" fn(*const super::HostRequest, usize, *mut RawSlice, *mut RawSlice) -> bool,
        response_status: unsafe extern "C" fn(*mut super::HostResponse, u16),
        response_header: unsafe extern "C" fn(*mut super::HostResponse, RawSlice, RawSlice, u32) -> bool,
        response_body: unsafe extern "C" fn(*mut super::HostResponse, RawSlice, u32),
        route: unsafe extern "C" fn(*mut super::InitSink, RawSlice, RawSlice, u32, u64),
        init_error: unsafe extern "C" fn(*mut super::InitSink, RawSlice),
        sleep: unsafe extern "C" fn(u64) -> FfiFuture<()>,
        spawn: unsafe extern "C" fn(*const super::HostApp, FfiFuture<()>),
        db: unsafe extern "C" fn(*const super::HostRequest, u32, RawSlice, u64, RawSlice, RawSlice) -> FfiFuture<BufferHandle>,
        buffer_release: unsafe extern "C" fn(BufferHandle),
        tx_release: unsafe extern "C" fn(*const super::HostRequest, u64),
        migration: unsafe extern "C" fn(*mut super::MigrationSink, i64, RawSlice, RawSlice, RawSlice),
        response_stream: unsafe extern "C" fn(*mut super::HostResponse, FfiBodyStream),
        request_body_next: unsafe extern "C" fn(*const super::HostRequest) -> FfiFuture<BodyChunk>,
        ws_accept: unsafe extern "C" fn(*const super::HostRequest, RawSlice) -> *mut super::HostSocket,
        ws_recv: unsafe extern "C" fn(*mut super::HostSocket) -> FfiFuture<WsEvent>,
        ws_send: unsafe extern "C" fn(*mut super::HostSocket, u32, RawSlice) -> FfiFuture<bool>,
        ws_close: unsafe extern "C" fn(*mut super::HostSocket, u16, RawSlice),
        ws_release: unsafe extern "C" fn(*mut super::HostSocket),
        hub_subscribe: unsafe extern "C" fn(*mut super::HostSocket, RawSlice, u32) -> bool,
        hub_unsubscribe: unsafe extern "C" fn(*mut super::HostSocket, RawSlice),
        hub_publish: unsafe extern "C" fn(*const super::HostApp, RawSlice, RawSlice) -> u64,
        session_load: unsafe extern "C" fn(*const super::HostRequest) -> FfiFuture<u32>,
        session_get: unsafe extern "C" fn(*const super::HostRequest, RawSlice) -> BufferHandle,
        session_set: unsafe extern "C" fn(*const super::HostRequest, RawSlice, RawSlice) -> u32,
        session_renew: unsafe extern "C" fn(*const super::HostRequest) -> u32,
        session_invalidate: unsafe extern "C" fn(*const super::HostRequest) -> u32,
    }),
    crate::__type_layout!(FfiBodyStream {
        stream: *mut core::ffi::c_void,
        poll_next: unsafe extern "C" fn(*mut core::ffi::c_void, *mut FfiContext<'_>) -> FfiPoll<BodyChunk>,
        drop: unsafe extern "C" fn(*mut core::ffi::c_void),
    }),
    crate::__type_layout!(BufferHandle {
        ptr: *mut u8,
        len: usize,
        capacity: usize,
    }),
    crate::__type_layout!(FfiWaker { vtable: *const FfiWakerVtable }),
    crate::__type_layout!(FfiWakerVtable {
        clone: unsafe extern "C" fn(*const FfiWaker) -> *const FfiWaker,
        wake: unsafe extern "C" fn(*const FfiWaker),
        wake_by_ref: unsafe extern "C" fn(*const FfiWaker),
        drop: unsafe extern "C" fn(*const FfiWaker),
    }),
    crate::__type_layout!(FfiContext {
        waker: *const FfiWaker,
        _borrow: core::marker::PhantomData<&FfiWaker>,
    }),
    sized::<FfiFuture<u32>>("FfiFuture<u32>"),
    sized::<FfiFuture<()>>("FfiFuture<()>"),
    sized::<FfiFuture<BufferHandle>>("FfiFuture<BufferHandle>"),
    sized::<FfiFuture<BodyChunk>>("FfiFuture<BodyChunk>"),
    sized::<FfiFuture<WsEvent>>("FfiFuture<WsEvent>"),
    sized::<FfiFuture<bool>>("FfiFuture<bool>"),
    sized::<BodyChunk>("BodyChunk{Data,End,Error}"),
    sized::<FfiPoll<BodyChunk>>("FfiPoll<BodyChunk>"),
    // Variants by their layout: tag, then fields in order.
    sized::<WsEvent>("WsEvent{Text,Binary,Hub{topic,payload},Closed{code,reason}}"),
    sized::<FfiPoll<WsEvent>>("FfiPoll<WsEvent>"),
];

/// The fingerprint both sides compute from [`CONTRACT`].
pub const LAYOUT_HASH: u64 = layout_hash(CONTRACT);

/// FNV-1a over every name, type, size, alignment and offset in `types`.
pub const fn layout_hash(types: &[TypeLayout]) -> u64 {
    let mut h = Fnv::new();
    let mut i = 0;
    while i < types.len() {
        let t = &types[i];
        h = h.str(t.name).num(t.size).num(t.align).num(t.fields.len());
        let mut j = 0;
        while j < t.fields.len() {
            let f = &t.fields[j];
            h = h.str(f.name).str(f.ty).num(f.offset).num(f.size);
            j += 1;
        }
        i += 1;
    }
    h.0
}

struct Fnv(u64);

impl Fnv {
    const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    const fn bytes(mut self, bytes: &[u8]) -> Self {
        let mut i = 0;
        while i < bytes.len() {
            self.0 ^= bytes[i] as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        self
    }

    const fn str(self, s: &str) -> Self {
        // The length first, so that "ab"+"c" and "a"+"bc" differ.
        self.num(s.len()).bytes(s.as_bytes())
    }

    const fn num(self, n: usize) -> Self {
        self.bytes(&(n as u64).to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    #[repr(C)]
    struct Original {
        a: u32,
        b: u64,
    }
    #[allow(dead_code)]
    #[repr(C)]
    struct Reordered {
        b: u64,
        a: u32,
    }
    #[allow(dead_code)]
    #[repr(C)]
    struct Retyped {
        a: u64,
        b: u64,
    }
    #[allow(dead_code)]
    #[repr(C)]
    struct Appended {
        a: u32,
        b: u64,
        c: u8,
    }

    const ORIGINAL: &[TypeLayout] = &[crate::__type_layout!(Original { a: u32, b: u64 })];
    const REORDERED: &[TypeLayout] = &[crate::__type_layout!(Reordered { b: u64, a: u32 })];
    const RETYPED: &[TypeLayout] = &[crate::__type_layout!(Retyped { a: u64, b: u64 })];
    const APPENDED: &[TypeLayout] = &[crate::__type_layout!(Appended { a: u32, b: u64, c: u8 })];

    #[test]
    fn hash_changes_when_a_field_changes() {
        let original = layout_hash(ORIGINAL);
        for other in [REORDERED, RETYPED, APPENDED] {
            assert_ne!(original, layout_hash(other), "{other:?}");
        }
        assert_eq!(original, layout_hash(ORIGINAL));
    }

    #[test]
    fn contract_hash_covers_every_vtable_slot() {
        let vtable = CONTRACT.iter().find(|t| t.name == "HostVtable").unwrap();
        assert_eq!(vtable.size, vtable.fields.len() * size_of::<usize>());
        let last = vtable.fields.last().unwrap();
        assert_eq!(last.offset + last.size, vtable.size);
    }
}
