//! Watches the deploy directory. A file counts only once it has settled:
//! its size, modification time and inode have not changed for
//! `settle_time`, so a file still being copied in is not loaded (a file
//! renamed into place is complete, and is loaded one settle time later). Change events from the `notify`
//! crate trigger a scan; a periodic rescan is the fallback for filesystems
//! without events.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Deployable, app_name, is_candidate};

/// What a file looked like when last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Fingerprint {
    /// Reads the fingerprint of `path`.
    pub fn of(path: &Path) -> Option<Fingerprint> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Fingerprint {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        })
    }
}

/// A settled change in the deploy directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A library appeared.
    Added(Deployable),
    /// A library was replaced or rewritten.
    Changed(Deployable),
    /// A library was removed.
    Removed(Deployable),
}

/// The deploy-directory watcher.
pub struct Watcher {
    dir: PathBuf,
    settle: Duration,
    scan_interval: Duration,
    known: HashMap<PathBuf, Fingerprint>,
    pending: HashMap<PathBuf, (Fingerprint, Instant)>,
}

impl Watcher {
    /// A watcher that takes the files in `dir` now as already handled.
    pub fn new(dir: &Path, settle: Duration, scan_interval: Duration) -> Self {
        let mut watcher = Watcher {
            dir: dir.to_path_buf(),
            settle,
            scan_interval,
            known: HashMap::new(),
            pending: HashMap::new(),
        };
        watcher.known = watcher.scan();
        watcher
    }

    /// Sends settled changes to `changes` until `shutdown` is cancelled or
    /// the receiver is gone.
    pub async fn run(mut self, changes: mpsc::Sender<Change>, shutdown: CancellationToken) {
        let (wake, mut woken) = mpsc::channel::<()>(1);
        let _events = self.subscribe(wake);
        loop {
            let wait = if self.pending.is_empty() {
                self.scan_interval
            } else {
                (self.settle / 2).max(Duration::from_millis(20))
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = woken.recv() => {}
                () = tokio::time::sleep(wait) => {}
            }
            for change in self.poll(Instant::now()) {
                if changes.send(change).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Subscribes to filesystem events; without them, rescans still work.
    fn subscribe(&self, wake: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher as _;
        let handler = move |_: notify::Result<notify::Event>| {
            let _ = wake.try_send(());
        };
        let result = notify::recommended_watcher(handler)
            .and_then(|mut w| w.watch(&self.dir, notify::RecursiveMode::NonRecursive).map(|()| w));
        match result {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "no filesystem events; rescanning periodically");
                None
            }
        }
    }

    fn scan(&self) -> HashMap<PathBuf, Fingerprint> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return HashMap::new();
        };
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_candidate(p))
            .filter_map(|p| Fingerprint::of(&p).map(|f| (p, f)))
            .collect()
    }

    /// One scan: the changes that have settled by `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Change> {
        let current = self.scan();
        let mut changes = Vec::new();
        for (path, fingerprint) in &current {
            if self.known.get(path) == Some(fingerprint) {
                self.pending.remove(path);
                continue;
            }
            match self.pending.get(path) {
                Some((seen, since)) if seen == fingerprint => {
                    if now.duration_since(*since) >= self.settle {
                        let added = !self.known.contains_key(path);
                        self.pending.remove(path);
                        self.known.insert(path.clone(), fingerprint.clone());
                        changes.extend(deployable(path).map(if added { Change::Added } else { Change::Changed }));
                    }
                }
                _ => {
                    self.pending.insert(path.clone(), (fingerprint.clone(), now));
                }
            }
        }
        self.pending.retain(|path, _| current.contains_key(path));
        let removed: Vec<PathBuf> = self
            .known
            .keys()
            .filter(|p| !current.contains_key(*p))
            .cloned()
            .collect();
        for path in removed {
            self.known.remove(&path);
            changes.extend(deployable(&path).map(Change::Removed));
        }
        changes.sort_by(|a, b| change_file(a).cmp(change_file(b)));
        changes
    }
}

fn change_file(change: &Change) -> &Path {
    match change {
        Change::Added(d) | Change::Changed(d) | Change::Removed(d) => &d.file,
    }
}

fn deployable(path: &Path) -> Option<Deployable> {
    match app_name(path) {
        Ok(name) => Some(Deployable {
            name,
            file: path.to_path_buf(),
        }),
        Err(error) => {
            tracing::error!(%error, "ignored a file in the deploy directory");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_count_once_settled_and_removals_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old.so"), b"old").unwrap();
        let mut watcher = Watcher::new(dir.path(), Duration::from_secs(1), Duration::from_secs(2));
        let t0 = Instant::now();
        assert!(watcher.poll(t0).is_empty(), "files present at start are known");

        std::fs::write(dir.path().join("new.so"), b"half").unwrap();
        std::fs::write(dir.path().join(".hidden.so"), b"x").unwrap();
        assert!(watcher.poll(t0).is_empty(), "first sighting starts the settle clock");
        std::fs::write(dir.path().join("new.so"), b"half and the rest").unwrap();
        assert!(
            watcher.poll(t0 + Duration::from_millis(1500)).is_empty(),
            "it changed: the clock restarts"
        );
        let file = dir.path().join("new.so");
        let added = watcher.poll(t0 + Duration::from_millis(2600));
        assert_eq!(
            added,
            vec![Change::Added(Deployable {
                name: "new".into(),
                file
            })]
        );

        std::fs::remove_file(dir.path().join("old.so")).unwrap();
        let file = dir.path().join("old.so");
        let removed = watcher.poll(t0 + Duration::from_secs(3));
        assert_eq!(
            removed,
            vec![Change::Removed(Deployable {
                name: "old".into(),
                file
            })]
        );
    }
}
