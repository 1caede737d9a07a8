//! Status marker files beside each module, in the style of WildFly's
//! deployment scanner: `hello.so.deployed`, `hello.so.failed` (holding the
//! error text) or `hello.so.stopped`, so operators see the outcome of a
//! deployment with `ls`.

use std::path::{Path, PathBuf};

/// The outcome a marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// Deployed and running.
    Deployed,
    /// The last deployment or reload failed (the file holds the reason).
    Failed,
    /// Stopped by an operator; the file stays deployed.
    Stopped,
}

const ALL: [Marker; 3] = [Marker::Deployed, Marker::Failed, Marker::Stopped];

impl Marker {
    fn suffix(self) -> &'static str {
        match self {
            Marker::Deployed => "deployed",
            Marker::Failed => "failed",
            Marker::Stopped => "stopped",
        }
    }

    /// The marker file of `library` for this outcome.
    pub fn path_for(self, library: &Path) -> PathBuf {
        let mut name = library.file_name().unwrap_or_default().to_os_string();
        name.push(".");
        name.push(self.suffix());
        library.with_file_name(name)
    }
}

/// Replaces whatever marker `library` has with `marker` holding `text`
/// (`None` removes every marker). Written to a temporary name and renamed,
/// so readers never see half a marker. Failures are logged, not fatal.
pub fn write_marker(library: &Path, marker: Option<(Marker, &str)>) {
    for other in ALL {
        if marker.map(|(m, _)| m) != Some(other) {
            let _ = std::fs::remove_file(other.path_for(library));
        }
    }
    let Some((marker, text)) = marker else { return };
    let path = marker.path_for(library);
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let result = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(error) = result {
        tracing::warn!(file = %path.display(), %error, "cannot write deployment marker");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_marker_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("hello.so");
        write_marker(&lib, Some((Marker::Failed, "boom")));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("hello.so.failed")).unwrap(),
            "boom"
        );
        write_marker(&lib, Some((Marker::Deployed, "ok")));
        assert!(!dir.path().join("hello.so.failed").exists());
        assert!(dir.path().join("hello.so.deployed").exists());
        write_marker(&lib, None);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
