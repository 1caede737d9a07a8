//! Opening a library and checking its descriptor before anything is called.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crabcat_sdk::abi::{
    ABI_MAJOR, ENTRY_SYMBOL, EntryFn, FLAG_PANIC_UNWIND, LAYOUT_HASH, MAGIC, ModuleDescriptor, ModuleHeader, RawSlice,
};
use libloading::Library;

/// Why a file could not be loaded as a module. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `dlopen` refused the file.
    #[error("{file}: not a loadable library: {source}")]
    Open {
        file: PathBuf,
        #[source]
        source: libloading::Error,
    },
    /// The library has no entry symbol.
    #[error("{file}: no `{symbol}` symbol: not a Crabcat module, or one built for another ABI major version")]
    MissingSymbol { file: PathBuf, symbol: &'static str },
    /// The entry point returned null.
    #[error("{file}: `{symbol}` returned a null descriptor")]
    NullDescriptor { file: PathBuf, symbol: &'static str },
    /// The descriptor does not start with the magic number.
    #[error("{file}: bad magic number: expected {expected:#018x}, found {found:#018x}")]
    BadMagic { file: PathBuf, expected: u64, found: u64 },
    /// Another major version of the ABI.
    #[error("{file}: module `{module}` uses ABI major version {found}, this container speaks {expected}")]
    AbiMajor {
        file: PathBuf,
        module: String,
        expected: u32,
        found: u32,
    },
    /// Same major version, different struct layouts.
    #[error(
        "{file}: module `{module}` has ABI layout hash {found:#018x}, this container expects {expected:#018x}: \
         it was built against a different crabcat-sdk contract; rebuild it with this container's SDK (sdk {sdk})"
    )]
    LayoutHash {
        file: PathBuf,
        module: String,
        sdk: String,
        expected: u64,
        found: u64,
    },
    /// A struct size disagrees although the hash matched.
    #[error("{file}: module `{module}` has {what} of {found} bytes, this container expects {expected}")]
    Size {
        file: PathBuf,
        module: String,
        what: &'static str,
        expected: usize,
        found: usize,
    },
    /// Built with `panic = "abort"`.
    #[error(
        "{file}: module `{module}` was built with panic = \"abort\": any panic in it would abort the whole \
         container; rebuild it with panic = \"unwind\" (the default)"
    )]
    PanicAbort { file: PathBuf, module: String },
}

/// What a module says about itself (diagnostics only).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModuleInfo {
    /// The crate name.
    pub crate_name: String,
    /// The crate version.
    pub version: String,
    /// The crabcat-sdk version it was built with.
    pub sdk_version: String,
    /// The compiler that built it.
    pub rustc_version: String,
}

/// A loaded, checked module. The library is never unloaded (see
/// `docs/src/abi.md`, "Measured facts", 8–10): dropping a `Module` leaks its image.
pub struct Module {
    pub(super) descriptor: &'static ModuleDescriptor,
    info: ModuleInfo,
    file: PathBuf,
    mapped_bytes: u64,
}

static LOADED_IMAGES: AtomicUsize = AtomicUsize::new(0);

static LOADED_IMAGE_BYTES: AtomicU64 = AtomicU64::new(0);

/// How many library images this process has loaded and keeps loaded, and
/// the bytes of address space they map.
pub fn loaded_images() -> (usize, u64) {
    (
        LOADED_IMAGES.load(Ordering::Relaxed),
        LOADED_IMAGE_BYTES.load(Ordering::Relaxed),
    )
}

impl Module {
    /// Loads the library at `path` (a private staging copy, never a file
    /// that may be overwritten) and checks its descriptor. `file` is the
    /// name reported in errors.
    ///
    /// Steps: 1. open, 2. find the entry symbol, 3. call it (it does no
    /// work), 4. check magic, major version, layout hash, sizes and panic
    /// strategy. Nothing else in the module is called.
    ///
    /// # Errors
    /// A [`LoadError`] naming the step that failed and what it found.
    pub fn load(path: &Path, file: &Path) -> Result<Module, LoadError> {
        let file = file.to_path_buf();
        // SAFETY: opening a library runs its initialisers. A Crabcat module
        // has none beyond Rust's own; for other libraries this is the risk
        // every plugin host takes, documented in docs/src/security.md.
        let library = unsafe { Library::new(path) }.map_err(|source| LoadError::Open {
            file: file.clone(),
            source,
        })?;
        // Never unload: leak the handle (docs/src/abi.md, "Measured facts", 8).
        let library: &'static Library = Box::leak(Box::new(library));
        LOADED_IMAGES.fetch_add(1, Ordering::Relaxed);
        let mapped_bytes = mapped_bytes(path);
        LOADED_IMAGE_BYTES.fetch_add(mapped_bytes, Ordering::Relaxed);
        // SAFETY: the symbol, if present, is the SDK's entry point with the
        // `EntryFn` signature; its name carries the ABI major version.
        let entry =
            unsafe { library.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) }.map_err(|_| LoadError::MissingSymbol {
                file: file.clone(),
                symbol: ENTRY_SYMBOL,
            })?;
        let descriptor = entry();
        // SAFETY: the entry point returns a pointer to a static descriptor
        // in the library, which stays loaded forever. Only the header is
        // read until it has been checked.
        let header = unsafe { descriptor.cast::<ModuleHeader>().as_ref() }.ok_or(LoadError::NullDescriptor {
            file: file.clone(),
            symbol: ENTRY_SYMBOL,
        })?;
        let info = check_header(header, &file)?;
        // SAFETY: the header matched this container's contract, so the
        // pointer is a complete `ModuleDescriptor` with the same layout.
        let descriptor = unsafe { &*descriptor };
        Ok(Module {
            descriptor,
            info,
            file,
            mapped_bytes,
        })
    }

    /// What the module says about itself.
    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }

    /// The file it was loaded from (as named in the deploy directory).
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Bytes of address space its image maps (0 where unknown).
    pub fn mapped_bytes(&self) -> u64 {
        self.mapped_bytes
    }
}

/// Bytes mapped from `path` by the dynamic loader, from `/proc/self/maps`
/// (Linux); 0 elsewhere or if unreadable.
fn mapped_bytes(path: &Path) -> u64 {
    let (Ok(path), Ok(maps)) = (std::fs::canonicalize(path), std::fs::read_to_string("/proc/self/maps")) else {
        return 0;
    };
    let path = path.to_string_lossy();
    maps.lines()
        .filter(|line| line.ends_with(&*path))
        .filter_map(|line| {
            let (start, end) = line.split_whitespace().next()?.split_once('-')?;
            Some(u64::from_str_radix(end, 16).ok()? - u64::from_str_radix(start, 16).ok()?)
        })
        .sum()
}

fn check_header(header: &ModuleHeader, file: &Path) -> Result<ModuleInfo, LoadError> {
    let file = file.to_path_buf();
    if header.magic != MAGIC {
        return Err(LoadError::BadMagic {
            file,
            expected: MAGIC,
            found: header.magic,
        });
    }
    // SAFETY: the magic matched, so the slices are the SDK's `'static` strings.
    let info = unsafe { header_info(header) };
    let module = info.crate_name.clone();
    if header.abi_major != ABI_MAJOR {
        return Err(LoadError::AbiMajor {
            file,
            module,
            expected: ABI_MAJOR,
            found: header.abi_major,
        });
    }
    if header.layout_hash != LAYOUT_HASH {
        return Err(LoadError::LayoutHash {
            file,
            module,
            sdk: info.sdk_version,
            expected: LAYOUT_HASH,
            found: header.layout_hash,
        });
    }
    let sizes = [
        (
            "a module header",
            size_of::<ModuleHeader>(),
            header.header_size as usize,
        ),
        (
            "a descriptor",
            size_of::<ModuleDescriptor>(),
            header.descriptor_size as usize,
        ),
    ];
    for (what, expected, found) in sizes {
        if expected != found {
            return Err(LoadError::Size {
                file,
                module,
                what,
                expected,
                found,
            });
        }
    }
    if header.flags & FLAG_PANIC_UNWIND == 0 {
        return Err(LoadError::PanicAbort { file, module });
    }
    Ok(info)
}

/// # Safety
/// The slices of `header` must be null or valid UTF-8-ish bytes for `'static`.
unsafe fn header_info(header: &ModuleHeader) -> ModuleInfo {
    // SAFETY: by the caller.
    let text = |s: RawSlice| String::from_utf8_lossy(unsafe { slice(s) }).into_owned();
    ModuleInfo {
        crate_name: text(header.name),
        version: text(header.version),
        sdk_version: text(header.sdk_version),
        rustc_version: text(header.rustc_version),
    }
}

/// Borrows a slice handed over by a module.
///
/// # Safety
/// `s` must be null or valid for reads of `len` bytes for `'a`.
pub(super) unsafe fn slice<'a>(s: RawSlice) -> &'a [u8] {
    if s.ptr.is_null() || s.len == 0 {
        &[]
    } else {
        // SAFETY: non-null and valid for `len` bytes, by the caller.
        unsafe { std::slice::from_raw_parts(s.ptr, s.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good_header() -> ModuleHeader {
        ModuleHeader {
            magic: MAGIC,
            abi_major: ABI_MAJOR,
            abi_minor: 0,
            header_size: size_of::<ModuleHeader>() as u32,
            descriptor_size: size_of::<ModuleDescriptor>() as u32,
            layout_hash: LAYOUT_HASH,
            flags: FLAG_PANIC_UNWIND,
            name: RawSlice::from_str("m"),
            version: RawSlice::from_str("1.0.0"),
            sdk_version: RawSlice::from_str("0.1.0"),
            rustc_version: RawSlice::from_str("rustc"),
        }
    }

    fn check(change: impl FnOnce(&mut ModuleHeader)) -> Result<ModuleInfo, LoadError> {
        let mut header = good_header();
        change(&mut header);
        check_header(&header, Path::new("m.so"))
    }

    #[test]
    fn every_header_check_refuses_with_what_it_found() {
        assert_eq!(check(|_| {}).unwrap().crate_name, "m");
        type Change = fn(&mut ModuleHeader);
        let cases: [(Change, &str); 5] = [
            (|h| h.magic = 1, "bad magic number"),
            (|h| h.abi_major = 2, "uses ABI major version 2, this container speaks 1"),
            (|h| h.layout_hash ^= 1, "this container expects"),
            (|h| h.descriptor_size += 8, "has a descriptor of"),
            (|h| h.flags = 0, "panic = \"abort\""),
        ];
        for (change, expected) in cases {
            let error = check(change).unwrap_err().to_string();
            assert!(error.starts_with("m.so: "), "{error}");
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }
}
