//! Private staging copies: what is actually loaded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::DeployError;

/// Where staging copies go: a private directory per container process.
pub struct Staging {
    dir: PathBuf,
    counter: AtomicU64,
}

impl Staging {
    /// Creates `<tmp>/crabcat-<pid>/`.
    ///
    /// # Errors
    /// If it cannot be created.
    pub fn create() -> Result<Staging, DeployError> {
        let dir = std::env::temp_dir().join(format!("crabcat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| DeployError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Staging {
            dir,
            counter: AtomicU64::new(0),
        })
    }

    /// Copies `file` to a unique path that nothing else will ever write,
    /// so that loading it gives a fresh image (the loader returns the old
    /// image for a path it already has open) and replacing the deploy file
    /// cannot crash the process (a library overwritten in place does).
    /// The copy is removed when the [`StagedCopy`] is dropped, once loaded.
    ///
    /// # Errors
    /// If the file cannot be read or the copy written.
    pub fn stage(&self, name: &str, file: &Path) -> Result<StagedCopy, DeployError> {
        let bytes = std::fs::read(file).map_err(|source| DeployError::Io {
            path: file.to_path_buf(),
            source,
        })?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{name}-{n}.{}", super::library_extension()));
        // Hash on a second thread while this one writes: the two take about
        // as long each (a few ms for a library of a few MB), and a reload
        // waits for both.
        let (sha256, written) = std::thread::scope(|scope| {
            let hash = scope.spawn(|| sha256_hex(&bytes));
            let written = std::fs::write(&path, &bytes);
            (hash.join().expect("hashing does not panic"), written)
        });
        written.map_err(|source| DeployError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(StagedCopy {
            path,
            sha256,
            size: bytes.len() as u64,
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A staging copy; the file is removed on drop (a loaded mapping stays valid).
pub struct StagedCopy {
    path: PathBuf,
    sha256: String,
    size: u64,
}

impl StagedCopy {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 of the library, lowercase hex.
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

/// SHA-256 of a file in lowercase hex.
///
/// # Errors
/// If it cannot be read.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    std::fs::read(path).map(|bytes| sha256_hex(&bytes))
}
