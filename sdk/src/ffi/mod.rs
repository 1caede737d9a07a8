//! The module's side of the ABI, and the only `unsafe` code of the SDK.
//!
//! * `entry`: the `extern "C"` functions the export macro puts in the
//!   descriptor; each catches panics.
//! * `future`: futures and wakers that cross the boundary (re-exported as
//!   part of the contract from `abi`).
//! * `stream`: bodies that cross the boundary as they are produced.
//! * `host`: safe wrappers around the host vtable (logging, sleep, spawn,
//!   requests and responses, database calls).

#![allow(unsafe_code)]

pub(crate) mod entry;
pub(crate) mod future;
pub(crate) mod host;
pub(crate) mod stream;
#[cfg(test)]
pub(crate) mod testing;

pub use entry::descriptor;

/// The host vtable this image was given in `init`, if it ran. Only for
/// test fixtures that misuse the ABI on purpose (calling through it needs
/// `unsafe` anyway); apps have no use for it.
#[doc(hidden)]
pub fn host_vtable() -> Option<&'static crate::abi::HostVtable> {
    host::vtable()
}

/// Exports an [`App`](crate::App) type as a Crabcat module.
///
/// Put it once in the crate root of a `cdylib` crate:
///
/// ```ignore
/// crabcat_sdk::export_app!(Hello);
/// ```
///
/// It defines the module's entry symbol and its static descriptor. It emits
/// no `unsafe` block, so apps may `#![forbid(unsafe_code)]`.
#[macro_export]
macro_rules! export_app {
    ($app:ty) => {
        #[doc(hidden)]
        static __CRABCAT_DESCRIPTOR: $crate::abi::ModuleDescriptor = $crate::ffi::descriptor::<$app>(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            cfg!(panic = "unwind"),
        );

        /// The module's entry point: returns its static descriptor.
        #[unsafe(no_mangle)]
        pub extern "C" fn crabcat_module_v1() -> *const $crate::abi::ModuleDescriptor {
            &__CRABCAT_DESCRIPTOR
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn macro_symbol_matches_the_contract() {
        // The export macro spells the symbol out; keep it equal to the constant.
        assert_eq!(crate::abi::ENTRY_SYMBOL, "crabcat_module_v1");
        assert!(crate::abi::ENTRY_SYMBOL.ends_with(&format!("_v{}", crate::abi::ABI_MAJOR)));
    }
}
