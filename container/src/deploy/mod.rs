//! The deploy directory: which files are modules and what they are called
//! (here), the private staging copies that are actually loaded
//! (`staging`), the status marker files beside each module (`markers`),
//! and the watcher that notices new, replaced and removed files
//! (`watcher`); app bundles, their format and safe unpacking (`bundle`).
//! Knows nothing of the ABI.

pub mod bundle;
mod markers;
mod staging;
mod watcher;

use std::path::{Path, PathBuf};

pub use markers::{Marker, write_marker};
pub use staging::{StagedCopy, Staging, sha256_file, sha256_hex};
pub use watcher::{Change, Fingerprint, ScanCounters, Watcher, is_relevant};

/// Why a deploy-directory file could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The file name does not give a valid app name.
    #[error("{file}: {reason}")]
    BadName { file: PathBuf, reason: &'static str },
    /// A bundle was refused.
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    /// Reading the directory or copying a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A library or bundle found in the deploy directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployable {
    /// The app name: the file stem, without a leading `lib` (a library)
    /// or a trailing `-VERSION` (a bundle).
    pub name: String,
    /// The file in the deploy directory.
    pub file: PathBuf,
}

/// The platform's library extension: `so`, `dylib` or `dll`.
pub fn library_extension() -> &'static str {
    std::env::consts::DLL_EXTENSION
}

/// The app name for a library or bundle file name: `hello.so` or
/// `libhello.so` → `hello`; `hello.crabcat` or `hello-0.2.0.crabcat` →
/// `hello`.
///
/// # Errors
/// If the name is not 1–64 characters of `[A-Za-z0-9_-]`.
pub fn app_name(file: &Path) -> Result<String, DeployError> {
    let bad = |reason| DeployError::BadName {
        file: file.to_path_buf(),
        reason,
    };
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| bad("file name is not UTF-8"))?;
    let name = if is_bundle_name(file) {
        bundle::split_versioned_stem(stem).0
    } else {
        stem.strip_prefix("lib").filter(|s| !s.is_empty()).unwrap_or(stem)
    };
    validate_name(name).map_err(bad)?;
    Ok(name.to_owned())
}

/// Checks an app name: 1–64 characters of `[A-Za-z0-9_-]`.
///
/// # Errors
/// The reason, for an error message.
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        return Err("app names are 1 to 64 characters long");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err("app names may only contain letters, digits, '-' and '_'");
    }
    Ok(())
}

/// The file name of app `name` in a deploy directory: `name.so`.
pub fn file_name(name: &str) -> String {
    format!("{name}.{}", library_extension())
}

/// Whether `file` is named like a bundle: `*.crabcat`.
pub fn is_bundle_name(file: &Path) -> bool {
    file.extension().and_then(|e| e.to_str()) == Some(bundle::EXTENSION)
}

/// The file name of app `name`'s bundle in a deploy directory: `name.crabcat`.
pub fn bundle_file_name(name: &str) -> String {
    format!("{name}.{}", bundle::EXTENSION)
}

/// Every library and bundle in `dir`, sorted by file name. Hidden files (a leading
/// `.`, the convention for uploads in progress) are skipped. Files with a
/// library extension but a bad name are returned as errors, to be reported.
///
/// # Errors
/// If the directory cannot be read.
pub fn scan(dir: &Path) -> Result<Vec<Result<Deployable, DeployError>>, DeployError> {
    let io = |source| DeployError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| is_candidate(path))
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|file| app_name(&file).map(|name| Deployable { name, file }))
        .collect())
}

pub(crate) fn is_candidate(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let extension = path.extension().and_then(|e| e.to_str());
    let deployable = extension == Some(library_extension()) || extension == Some(bundle::EXTENSION);
    !hidden && deployable && path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_file_names() {
        assert_eq!(app_name(Path::new("deploy/hello.so")).unwrap(), "hello");
        assert_eq!(app_name(Path::new("deploy/libhello.so")).unwrap(), "hello");
        assert_eq!(app_name(Path::new("deploy/lib.so")).unwrap(), "lib");
        assert_eq!(app_name(Path::new("deploy/my-app_2.so")).unwrap(), "my-app_2");
        assert!(app_name(Path::new("deploy/bad name.so")).is_err());
        assert!(app_name(Path::new("deploy/a.b.so")).is_err());
        assert_eq!(app_name(Path::new("deploy/shop.crabcat")).unwrap(), "shop");
        assert_eq!(app_name(Path::new("deploy/shop-1.2.0.crabcat")).unwrap(), "shop");
        assert_eq!(app_name(Path::new("deploy/libshop.crabcat")).unwrap(), "libshop");
    }
}
