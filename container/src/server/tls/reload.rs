//! Reloading the certificate without a restart: on SIGHUP (which `main`
//! forwards as a [`Notify`]) and when the certificate or key file changes.
//!
//! The files' directories are watched (a renewal tool often replaces a
//! file, or the symlink to it, rather than writing into it), and only
//! events naming one of the two files count. Tools write the certificate
//! and the key one after the other, so a reload waits until no event has
//! come for [`QUIET`]. An idle container does nothing: no timer runs until
//! an event arrives.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::EventKind;
use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::Tls;

/// How long the files must stay unchanged before they are read again.
pub const QUIET: Duration = Duration::from_millis(300);

/// Reloads a [`Tls`] when its files change or on SIGHUP. Dropping it stops
/// watching the files.
pub struct TlsReloader {
    tls: Arc<Tls>,
    changes: mpsc::Receiver<()>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl TlsReloader {
    /// Starts watching the files of `tls`: a change from now on is not
    /// missed, even before [`TlsReloader::run`].
    pub fn new(tls: Arc<Tls>) -> Self {
        let (changed, changes) = mpsc::channel(1);
        let watcher = watch(tls.files(), changed);
        TlsReloader {
            tls,
            changes,
            _watcher: watcher,
        }
    }

    /// Reloads each time `hangup` is notified or a file changed, until
    /// `shutdown` is cancelled.
    pub async fn run(mut self, hangup: Arc<Notify>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = hangup.notified() => {}
                Some(()) = self.changes.recv() => settle(&mut self.changes).await,
            }
            let tls = Arc::clone(&self.tls);
            let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
        }
    }
}

/// Returns once no change has been reported for [`QUIET`].
async fn settle(changes: &mut mpsc::Receiver<()>) {
    while let Ok(Some(())) = tokio::time::timeout(QUIET, changes.recv()).await {}
}

/// Watches the directories of `files`; each relevant event sends to
/// `changed`. Without filesystem events (logged), SIGHUP still reloads.
fn watch(files: [&Path; 2], changed: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    // Absolute (not canonical: a symlink is watched as itself), so that
    // the paths in events, which start with the watched directory's, match.
    let files: Vec<PathBuf> = files.iter().filter_map(|f| std::path::absolute(f).ok()).collect();
    let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    dirs.dedup();
    let watched = files.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        // An error (e.g. the event queue overflowed) may hide a change.
        if event.is_ok_and(|e| !is_relevant(&e, &watched)) {
            return;
        }
        let _ = changed.try_send(());
    };
    let result = notify::recommended_watcher(handler).and_then(|mut watcher| {
        for dir in &dirs {
            watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
        }
        Ok(watcher)
    });
    match result {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(%error, "cannot watch the TLS certificate files; reload with SIGHUP");
            None
        }
    }
}

/// Whether `event` can mean that one of `files` changed: anything but
/// opening, reading or closing without a write (reloading reads them) and
/// access-time updates, naming one of `files`; or a request to rescan.
fn is_relevant(event: &notify::Event, files: &[PathBuf]) -> bool {
    if event.need_rescan() {
        return true;
    }
    let kind = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    };
    kind && event.paths.iter().any(|path| files.contains(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, RenameMode};

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_changes_to_the_two_files_are_relevant() {
        let files = [PathBuf::from("/tls/cert.pem"), PathBuf::from("/tls/key.pem")];
        let write = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let created = EventKind::Create(CreateKind::File);
        for (kind, path) in [
            (write, "/tls/cert.pem"),
            (data, "/tls/key.pem"),
            (renamed, "/tls/cert.pem"),
            (created, "/tls/key.pem"),
        ] {
            assert!(is_relevant(&event(kind, path), &files), "{kind:?} {path}");
        }
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        let opened = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let atime = EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime));
        for (kind, path) in [
            (read, "/tls/cert.pem"),
            (opened, "/tls/key.pem"),
            (atime, "/tls/cert.pem"),
            (write, "/tls/other.pem"),
            (created, "/tls/cert.pem.tmp"),
        ] {
            assert!(!is_relevant(&event(kind, path), &files), "{kind:?} {path}");
        }
        let rescan = notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert!(is_relevant(&rescan, &files));
    }
}
