//! Unpacking a bundle, safely: every entry's name is checked before
//! anything is written (no `..`, no absolute path, no backslash or NUL),
//! only plain files and directories are accepted (no symlinks, devices,
//! pipes), and the entry count and the bytes actually inflated are capped
//! (a zip bomb stops at the cap, whatever its headers claim).

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::{BundleError, DESCRIPTOR, Descriptor, is_library_file};

/// Caps on what a bundle may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleLimits {
    /// Total bytes of every entry, inflated (`deploy.max_bundle_bytes`).
    pub max_bytes: u64,
    /// Entries, files and directories (`deploy.max_bundle_entries`).
    pub max_entries: usize,
}

/// A bundle's unpacked directory. Removed, with everything in it, when
/// the last clone of the `Arc` holding it is dropped: the instance that
/// runs from it and every static-file request still reading it.
#[derive(Debug)]
pub struct BundleDir {
    path: PathBuf,
}

impl BundleDir {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BundleDir {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => tracing::debug!(dir = %self.path.display(), "removed an unpacked bundle"),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(dir = %self.path.display(), %error, "cannot remove an unpacked bundle"),
        }
    }
}

/// An unpacked, checked bundle.
#[derive(Debug)]
pub struct Unpacked {
    /// Its directory (removed when the last `Arc` goes).
    pub dir: Arc<BundleDir>,
    /// Its descriptor.
    pub descriptor: Descriptor,
    /// The library, inside `dir`.
    pub library: PathBuf,
    /// `static/` inside `dir`, if the bundle has one.
    pub static_dir: Option<PathBuf>,
}

/// Unpacks the bundle `file` of app `name` into `dest` (which must not
/// exist), checks it, and returns what it holds. On any error, `dest` is
/// removed again.
///
/// # Errors
/// A [`BundleError`] naming `file` and the reason.
pub fn unpack(file: &Path, name: &str, dest: &Path, limits: BundleLimits) -> Result<Unpacked, BundleError> {
    let io = |path: &Path| {
        let (file, path) = (file.to_path_buf(), path.to_path_buf());
        move |source| BundleError::Io { file, path, source }
    };
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    let dir = Arc::new(BundleDir {
        path: dest.to_path_buf(),
    });
    let opened = std::fs::File::open(file).map_err(io(file))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(opened)).map_err(|e| BundleError::NotZip {
        file: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    extract_all(&mut archive, file, dest, limits)?;
    let descriptor = read_descriptor_file(file, dest)?;
    if descriptor.name != name {
        return Err(BundleError::WrongName {
            file: file.to_path_buf(),
            expected: name.to_owned(),
            found: descriptor.name,
        });
    }
    let library = find_library(file, dest)?;
    let static_dir = Some(dest.join("static")).filter(|d| d.is_dir());
    Ok(Unpacked {
        dir,
        descriptor,
        library,
        static_dir,
    })
}

fn extract_all<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    file: &Path,
    dest: &Path,
    limits: BundleLimits,
) -> Result<(), BundleError> {
    if archive.len() > limits.max_entries {
        return Err(BundleError::TooLarge {
            file: file.to_path_buf(),
            what: format!("{} entries", archive.len()),
            limit: limits.max_entries as u64,
            key: "max_bundle_entries",
        });
    }
    let mut budget = limits.max_bytes;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| BundleError::NotZip {
            file: file.to_path_buf(),
            reason: e.to_string(),
        })?;
        let raw = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let bad = |reason| BundleError::BadEntry {
            file: file.to_path_buf(),
            entry: raw.clone(),
            reason,
        };
        let relative = safe_relative(&raw).map_err(bad)?;
        check_kind(entry.unix_mode(), entry.is_symlink()).map_err(bad)?;
        if entry.encrypted() {
            return Err(bad("encrypted entries are not supported"));
        }
        let target = dest.join(&relative);
        let io = |path: &Path| {
            let (file, path) = (file.to_path_buf(), path.to_path_buf());
            move |source| BundleError::Io { file, path, source }
        };
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(io(&target))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        budget = copy_capped(&mut entry, &target, budget).map_err(|error| match error {
            CopyError::Io(source) => io(&target)(source),
            CopyError::OverBudget => BundleError::TooLarge {
                file: file.to_path_buf(),
                what: "unpacked size".into(),
                limit: limits.max_bytes,
                key: "max_bundle_bytes",
            },
        })?;
    }
    Ok(())
}

/// The relative path an entry name may be unpacked to.
///
/// # Errors
/// The reason an entry name is refused.
fn safe_relative(raw: &str) -> Result<PathBuf, &'static str> {
    if raw.contains('\0') || raw.contains('\\') {
        return Err("names may not contain NUL or '\\'");
    }
    if raw.starts_with('/') || raw.get(1..2) == Some(":") {
        return Err("absolute paths are not allowed");
    }
    let mut relative = PathBuf::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("'..' is not allowed"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute paths are not allowed"),
        }
    }
    if relative.as_os_str().is_empty() {
        return Err("empty name");
    }
    Ok(relative)
}

/// Only plain files and directories: the Unix file type bits, when the
/// archive records them, must say so.
fn check_kind(mode: Option<u32>, symlink: bool) -> Result<(), &'static str> {
    if symlink {
        return Err("symbolic links are not allowed");
    }
    match mode.map(|m| m & 0o170_000) {
        None | Some(0 | 0o100_000 | 0o040_000) => Ok(()),
        Some(_) => Err("only plain files and directories are allowed (no devices, pipes or sockets)"),
    }
}

enum CopyError {
    Io(std::io::Error),
    OverBudget,
}

/// Copies `entry` to a new file `target`, reading at most `budget` bytes;
/// returns what is left of the budget.
fn copy_capped(entry: &mut impl Read, target: &Path, budget: u64) -> Result<u64, CopyError> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(CopyError::Io)?;
    // One byte more than allowed tells an entry at the cap from one past it.
    let mut limited = entry.take(budget + 1);
    let copied = std::io::copy(&mut limited, &mut out).map_err(CopyError::Io)?;
    if copied > budget {
        return Err(CopyError::OverBudget);
    }
    out.flush().map_err(CopyError::Io)?;
    Ok(budget - copied)
}

/// Reads only the descriptor of a bundle (at most 64 KiB of it), without
/// unpacking anything: how `crabcat deploy` names the app.
///
/// # Errors
/// The reason, for an error message.
pub fn read_descriptor<R: Read + std::io::Seek>(reader: R) -> Result<Descriptor, String> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| format!("not a readable zip archive: {e}"))?;
    let entry = archive
        .by_name(DESCRIPTOR)
        .map_err(|_| format!("no {DESCRIPTOR} in the bundle"))?;
    let mut text = String::new();
    entry
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| format!("{DESCRIPTOR}: {e}"))?;
    Descriptor::parse(&text).map_err(|e| format!("{DESCRIPTOR}: {e}"))
}

fn read_descriptor_file(file: &Path, dest: &Path) -> Result<Descriptor, BundleError> {
    let bad = |reason: String| BundleError::Descriptor {
        file: file.to_path_buf(),
        reason,
    };
    let text = match std::fs::read_to_string(dest.join(DESCRIPTOR)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(bad("missing".into())),
        Err(e) => return Err(bad(e.to_string())),
    };
    Descriptor::parse(&text).map_err(bad)
}

/// The one library under `lib/`.
fn find_library(file: &Path, dest: &Path) -> Result<PathBuf, BundleError> {
    let refuse = |reason: String| BundleError::Library {
        file: file.to_path_buf(),
        reason,
    };
    let lib = dest.join("lib");
    let mut found: Vec<PathBuf> = match std::fs::read_dir(&lib) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(is_library_file))
            .collect(),
        Err(_) => Vec::new(),
    };
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(refuse(
            "no library under lib/ (one .so, .dylib or .dll is required)".into(),
        )),
        n => Err(refuse(format!(
            "{n} libraries under lib/ ({}); a bundle holds exactly one",
            found
                .iter()
                .filter_map(|p| p.file_name()?.to_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_that_leave_the_directory_are_refused() {
        assert_eq!(safe_relative("static/a/b.css").unwrap(), Path::new("static/a/b.css"));
        assert_eq!(safe_relative("./lib/x.so").unwrap(), Path::new("lib/x.so"));
        for bad in ["../x", "static/../../x", "/etc/passwd", "C:/x", "a\\b", "a\0b", ".", ""] {
            assert!(safe_relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_files_and_directories() {
        assert!(check_kind(None, false).is_ok());
        assert!(check_kind(Some(0o100_644), false).is_ok());
        assert!(check_kind(Some(0o040_755), false).is_ok());
        assert!(check_kind(Some(0o120_777), true).is_err());
        assert!(check_kind(Some(0o020_644), false).is_err(), "character device");
        assert!(check_kind(Some(0o010_644), false).is_err(), "fifo");
    }
}
