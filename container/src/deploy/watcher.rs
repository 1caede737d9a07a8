//! Watches the deploy directory. A file counts only once it has settled:
//! its size, modification time and inode have not changed for
//! `settle_time`, so a file still being copied in is not loaded (a file
//! renamed into place is complete, and is loaded one settle time later).
//!
//! Change events from the `notify` crate trigger a scan, but only events
//! that can mean a library changed ([`is_relevant`]): created, closed after
//! a write, moved in or out, removed, attributes changed, and only for
//! library file names. Directory reads (our own scans' `read_dir`, or those
//! of another container watching the same directory) open and close the
//! directory, which inotify reports too; reacting to them made each scan
//! wake the next one, forever. A periodic rescan is the fallback for
//! filesystems without events. [`ScanCounters`] count the scans by what
//! triggered them (`crabcat_deploy_scans` in `/metrics`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::EventKind;
use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Deployable, app_name, is_candidate, library_extension};

/// Scans of the deploy directory, by what triggered them. Cloning shares
/// the counts.
#[derive(Debug, Clone, Default)]
pub struct ScanCounters {
    /// A filesystem event that can mean a library changed.
    pub event: Counter,
    /// The periodic rescan (`deploy.scan_interval`).
    pub interval: Counter,
    /// A file seen changing, checked again until it has settled.
    pub settle: Counter,
}

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
    scans: ScanCounters,
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
            scans: ScanCounters::default(),
        };
        watcher.known = watcher.scan();
        watcher
    }

    /// Counts scans into `scans`.
    #[must_use]
    pub fn with_counters(mut self, scans: ScanCounters) -> Self {
        self.scans = scans;
        self
    }

    /// Sends settled changes to `changes` until `shutdown` is cancelled or
    /// the receiver is gone.
    pub async fn run(mut self, changes: mpsc::Sender<Change>, shutdown: CancellationToken) {
        let (wake, mut woken) = mpsc::channel::<()>(1);
        let _events = self.subscribe(wake);
        loop {
            let (wait, trigger) = if self.pending.is_empty() {
                (self.scan_interval, &self.scans.interval)
            } else {
                ((self.settle / 2).max(Duration::from_millis(20)), &self.scans.settle)
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = woken.recv() => self.scans.event.inc(),
                () = tokio::time::sleep(wait) => trigger.inc(),
            };
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
        let dir = self.dir.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            // An error (e.g. the event queue overflowed) may hide a change.
            if event.is_ok_and(|e| !is_relevant(&e, &dir)) {
                return;
            }
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

/// Whether `event` can mean that a library in `dir` changed: a change of
/// kind (created, closed after writing, renamed, removed, attributes) to a
/// library file name, or an event that asks for a rescan. Opening, reading
/// and closing without a write never are, nor are writes still going on
/// (the close after them is), nor the status markers and hidden files.
pub fn is_relevant(event: &notify::Event, dir: &Path) -> bool {
    if event.need_rescan() {
        return true;
    }
    let kind = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) | EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Modify(_) | EventKind::Any | EventKind::Other => true,
        EventKind::Access(_) => false,
    };
    kind && (event.paths.is_empty() || event.paths.iter().any(|p| p == dir || is_library_name(p)))
}

/// A library's or bundle's file name: the library extension or
/// `.crabcat`, not hidden. Looks at the
/// name only (the file may be gone).
fn is_library_name(path: &Path) -> bool {
    let visible = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| !n.starts_with('.'));
    let extension = path.extension().and_then(|e| e.to_str());
    visible && (extension == Some(library_extension()) || extension == Some(super::bundle::EXTENSION))
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
    use notify::event::{CreateKind, DataChange, RemoveKind, RenameMode};

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_changes_to_libraries_are_relevant() {
        let dir = Path::new("/d");
        let lib = format!("/d/hello.{}", library_extension());
        let relevant = [
            EventKind::Create(CreateKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Remove(RemoveKind::File),
        ];
        for kind in relevant {
            assert!(is_relevant(&event(kind, &lib), dir), "{kind:?}");
        }
        let ignored = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ];
        for kind in ignored {
            assert!(!is_relevant(&event(kind, &lib), dir), "{kind:?}");
        }
        // Reading the directory itself (a scan) opens and closes it.
        let open_dir = event(EventKind::Access(AccessKind::Open(AccessMode::Any)), "/d");
        assert!(!is_relevant(&open_dir, dir));
        let marker = format!("{lib}.deployed");
        assert!(!is_relevant(&event(EventKind::Create(CreateKind::File), &marker), dir));
        let hidden = format!("/d/.upload.{}", library_extension());
        assert!(!is_relevant(&event(EventKind::Create(CreateKind::File), &hidden), dir));
        let rescan = notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert!(is_relevant(&rescan, dir));
    }

    /// The loop this module used to have: a scan's `read_dir` produced
    /// events that triggered the next scan. With a real inotify watch on
    /// the directory, scanning it must produce no relevant event.
    #[test]
    fn scanning_does_not_wake_the_watcher() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("a.{}", library_extension())), b"x").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        let mut inotify = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            let _ = tx.send(e.map(|e| is_relevant(&e, &path)));
        })
        .unwrap();
        notify::Watcher::watch(&mut inotify, dir.path(), notify::RecursiveMode::NonRecursive).unwrap();
        let mut watcher = Watcher::new(dir.path(), Duration::from_secs(1), Duration::from_secs(2));
        for _ in 0..5 {
            watcher.poll(Instant::now());
        }
        // A write afterwards is seen, so events do arrive (and, the channel
        // being ordered, every event of the scans arrived before it).
        std::fs::write(dir.path().join(format!("b.{}", library_extension())), b"x").unwrap();
        let mut seen = Vec::new();
        while let Ok(e) = rx.recv_timeout(Duration::from_secs(5)) {
            let relevant = e.unwrap();
            seen.push(relevant);
            if relevant {
                break;
            }
        }
        assert!(
            seen.len() > 1,
            "the scans produced events, as inotify reports directory reads: {seen:?}"
        );
        assert_eq!(
            seen.iter().filter(|r| **r).count(),
            1,
            "only the write is relevant: {seen:?}"
        );
        assert_eq!(seen.last(), Some(&true));
    }

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
