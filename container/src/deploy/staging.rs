//! Private staging copies: what is actually loaded. A bare library is
//! copied; a bundle is copied, then unpacked into a directory of its own,
//! `<staging>/<app>/<generation>/`, and the copy removed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::DeployError;
use super::bundle::{self, BundleLimits, Unpacked};

/// Where staging copies go: a private directory per container process.
pub struct Staging {
    dir: PathBuf,
    counter: AtomicU64,
    limits: BundleLimits,
}

impl Staging {
    /// Creates `<tmp>/crabcat-<pid>/`; bundles unpack within `limits`.
    /// First removes what containers that were killed left there.
    ///
    /// # Errors
    /// If it cannot be created.
    pub fn create(limits: BundleLimits) -> Result<Staging, DeployError> {
        let tmp = std::env::temp_dir();
        remove_orphans(&tmp);
        Staging::create_in(tmp.join(format!("crabcat-{}", std::process::id())), limits)
    }

    /// Creates `dir` as the staging directory (removed with the
    /// [`Staging`]): a test's own, so that tests running at once in one
    /// process do not share `<tmp>/crabcat-<pid>/`.
    ///
    /// # Errors
    /// If it cannot be created.
    pub fn create_in(dir: PathBuf, limits: BundleLimits) -> Result<Staging, DeployError> {
        std::fs::create_dir_all(&dir).map_err(|source| DeployError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Staging {
            dir,
            counter: AtomicU64::new(0),
            limits,
        })
    }

    /// The staging directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Copies `file` to a unique path that nothing else will ever write,
    /// so that loading it gives a fresh image (the loader returns the old
    /// image for a path it already has open) and replacing the deploy file
    /// cannot crash the process (a library overwritten in place does).
    /// The copy is removed when the [`StagedCopy`] is dropped, once loaded.
    ///
    /// A bundle (recognised by its content, not its name) is copied the
    /// same way, then unpacked into `<staging>/<name>/<n>/` and checked;
    /// the copy's path is then its library's, and the hash the bundle's.
    ///
    /// # Errors
    /// If the file cannot be read or the copy written, or the bundle is
    /// refused ([`DeployError::Bundle`]).
    pub fn stage(&self, name: &str, file: &Path) -> Result<StagedCopy, DeployError> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let is_bundle = bundle::is_bundle(file).map_err(|source| DeployError::Io {
            path: file.to_path_buf(),
            source,
        })?;
        if !is_bundle && super::is_bundle_name(file) {
            return Err(bundle::BundleError::NotZip {
                file: file.to_path_buf(),
                reason: "it does not start like one".into(),
            }
            .into());
        }
        let extension = if is_bundle {
            bundle::EXTENSION
        } else {
            super::library_extension()
        };
        let path = self.dir.join(format!("{name}-{n}.{extension}"));
        let (sha256, size) = copy_hashing(file, &path)?;
        if !is_bundle {
            return Ok(StagedCopy {
                path,
                sha256,
                size,
                bundle: None,
            });
        }
        let dest = self.dir.join(name).join(n.to_string());
        let unpacked = bundle::unpack(&path, name, &dest, self.limits).map_err(|e| e.named(file));
        let _ = std::fs::remove_file(&path);
        let unpacked = unpacked?;
        Ok(StagedCopy {
            path: unpacked.library.clone(),
            sha256,
            size,
            bundle: Some(unpacked),
        })
    }
}

/// Copies `from` to `to` in chunks (never the whole file in memory) while a
/// second thread hashes them: a reload waits for both, and each takes
/// about as long (a few ms for a library of a few MB).
fn copy_hashing(from: &Path, to: &Path) -> Result<(String, u64), DeployError> {
    use std::io::{Read, Write};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DeployError::Io { path, source }
    };
    let mut source = std::fs::File::open(from).map_err(io(from))?;
    let mut target = std::fs::File::create(to).map_err(io(to))?;
    let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    std::thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            let mut hasher = Sha256::new();
            for chunk in received {
                hasher.update(&chunk);
            }
            format!("{:x}", hasher.finalize())
        });
        let mut size = 0u64;
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let read = source.read(&mut chunk).map_err(io(from))?;
            if read == 0 {
                break;
            }
            chunk.truncate(read);
            target.write_all(&chunk).map_err(io(to))?;
            size += read as u64;
            let _ = chunks.send(chunk);
        }
        drop(chunks);
        let sha256 = hasher.join().expect("hashing does not panic");
        Ok((sha256, size))
    })
}

/// What staging reads and writes at a time.
const CHUNK: usize = 1024 * 1024;

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A staging copy; the library file is removed on drop (a loaded mapping
/// stays valid). A bundle's directory lives on in its [`Unpacked`], until
/// the last handle on it goes.
pub struct StagedCopy {
    path: PathBuf,
    sha256: String,
    size: u64,
    bundle: Option<Unpacked>,
}

impl StagedCopy {
    /// The unpacked bundle, if the file was one (taken: the caller keeps it).
    pub fn take_bundle(&mut self) -> Option<Unpacked> {
        self.bundle.take()
    }

    /// The unpacked bundle, if the file was one.
    pub fn bundle(&self) -> Option<&Unpacked> {
        self.bundle.as_ref()
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 of the library (of the whole bundle, for a bundle),
    /// lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for StagedCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// SHA-256 of a file in lowercase hex, read in chunks.
///
/// # Errors
/// If it cannot be read.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// Removes the staging directories `<tmp>/crabcat-<pid>/` of processes that
/// no longer run: a container that was killed (SIGKILL, a crash) had no
/// chance to remove its own. Only where `/proc` says which processes run;
/// a directory that cannot be removed (another user's) is left alone.
fn remove_orphans(tmp: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("crabcat-")) else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || Path::new("/proc").join(pid).exists() {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %tmp.display(), "removed the staging directories of containers that no longer run");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphaned_staging_directories_are_removed_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        // Above any pid_max: no such process.
        let dead = tmp.path().join("crabcat-999999999");
        let alive = tmp.path().join(format!("crabcat-{}", std::process::id()));
        let other = tmp.path().join("crabcat-app.toml");
        for dir in [&dead, &alive, &other] {
            std::fs::create_dir_all(dir.join("app/0")).unwrap();
        }
        remove_orphans(tmp.path());
        assert!(!dead.exists());
        assert!(alive.exists() && other.exists());
    }
}
