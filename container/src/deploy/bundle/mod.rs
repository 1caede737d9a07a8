//! App bundles: one `.crabcat` file (a zip archive, like a WAR) holding an
//! app's library, its static files and a descriptor.
//!
//! ```text
//! crabcat-app.toml     the descriptor (`descriptor`)
//! lib/<one library>    the cdylib: exactly one .so, .dylib or .dll
//! static/**            served under <context path>/static/ (optional)
//! ```
//!
//! Reading one is `unpack` (every entry checked, sizes capped, into a
//! per-generation directory that is removed when its [`BundleDir`] goes);
//! writing one is `write` (used by `crabcat package`). Knows no ABI.

mod descriptor;
mod unpack;
mod write;

use std::path::{Path, PathBuf};

pub use descriptor::{DESCRIPTOR, Descriptor, SessionDefaults};
pub use unpack::{BundleDir, BundleLimits, Unpacked, read_descriptor, unpack};
pub use write::{BundleContents, write_bundle};

/// The file extension of a bundle: `hello.crabcat`.
pub const EXTENSION: &str = "crabcat";

/// Why a bundle was refused. Every message names the bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not a zip archive (or a damaged one).
    #[error("bundle {file}: not a readable zip archive: {reason}")]
    NotZip { file: PathBuf, reason: String },
    /// An entry would land outside the bundle's directory, or is not a
    /// plain file or directory.
    #[error("bundle {file}: entry {entry:?} refused: {reason}")]
    BadEntry {
        file: PathBuf,
        entry: String,
        reason: &'static str,
    },
    /// The archive unpacks to more than the configured caps.
    #[error("bundle {file}: {what}: over the limit of {limit} (deploy.{key})")]
    TooLarge {
        file: PathBuf,
        what: String,
        limit: u64,
        key: &'static str,
    },
    /// No library, or more than one, under `lib/`.
    #[error("bundle {file}: {reason}")]
    Library { file: PathBuf, reason: String },
    /// `crabcat-app.toml` is missing or invalid.
    #[error("bundle {file}: {DESCRIPTOR}: {reason}")]
    Descriptor { file: PathBuf, reason: String },
    /// The descriptor names another app.
    #[error("bundle {file}: its descriptor names app {found:?}, but it is deployed as {expected:?}")]
    WrongName {
        file: PathBuf,
        expected: String,
        found: String,
    },
    /// Reading or writing failed.
    #[error("bundle {file}: {path}: {source}")]
    Io {
        file: PathBuf,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BundleError {
    /// The same error, naming `file` as the bundle (the deploy directory's
    /// file rather than its staging copy).
    #[must_use]
    pub fn named(mut self, file: &Path) -> Self {
        match &mut self {
            BundleError::NotZip { file: f, .. }
            | BundleError::BadEntry { file: f, .. }
            | BundleError::TooLarge { file: f, .. }
            | BundleError::Library { file: f, .. }
            | BundleError::Descriptor { file: f, .. }
            | BundleError::WrongName { file: f, .. }
            | BundleError::Io { file: f, .. } => *f = file.to_path_buf(),
        }
        self
    }
}

/// Whether `path` holds a bundle rather than a bare library: it starts
/// with a zip archive's magic number. The content decides, not the name.
///
/// # Errors
/// If it cannot be read.
pub fn is_bundle(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path)?;
    let mut read = 0;
    while read < magic.len() {
        match file.read(&mut magic[read..])? {
            0 => break,
            n => read += n,
        }
    }
    Ok(read == 4 && magic == *b"PK\x03\x04")
}

/// Whether `name` is a library file name on any platform.
pub fn is_library_file(name: &str) -> bool {
    [".so", ".dylib", ".dll"].iter().any(|ext| name.ends_with(ext))
}

/// The app name and version a bundle's file name gives: `hello.crabcat`
/// → (`hello`, None); `hello-0.2.0.crabcat` (what `crabcat package`
/// writes) → (`hello`, `0.2.0`): a `-` followed by a digit, before the
/// first `.` of the stem, starts the version.
pub fn split_versioned_stem(stem: &str) -> (&str, Option<&str>) {
    let Some(dot) = stem.find('.') else {
        return (stem, None);
    };
    match stem[..dot].rfind('-') {
        Some(dash) if stem[dash + 1..].starts_with(|c: char| c.is_ascii_digit()) => {
            (&stem[..dash], Some(&stem[dash + 1..]))
        }
        _ => (stem, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_file_names_give_the_app_name() {
        assert_eq!(split_versioned_stem("hello"), ("hello", None));
        assert_eq!(split_versioned_stem("hello-0.2.0"), ("hello", Some("0.2.0")));
        assert_eq!(
            split_versioned_stem("my-app-1.0.0-rc.1"),
            ("my-app", Some("1.0.0-rc.1"))
        );
        assert_eq!(split_versioned_stem("my-app-2"), ("my-app-2", None));
        assert_eq!(split_versioned_stem("a.b"), ("a.b", None));
    }
}
