//! The access log, cheap on the request path. Each thread that finishes
//! requests formats their lines into a buffer of its own (a mutex only
//! that thread and, for a moment once in a while, the writer take); a
//! thread of its own takes the buffers and writes
//! them out at least every [`FLUSH_INTERVAL`], as soon as one holds
//! [`HAND_OVER`] bytes, and on shutdown ([`AccessLogWriter::finish`]),
//! merged in the order the requests finished.
//! Nothing is allocated, queued or freed per line, and no line crosses
//! threads on its own: nginx writes its log the same way, from the worker
//! that served the request, through a buffer.
//!
//! A full buffer never stalls a request: when the writer is
//! [`MOST_PENDING`] bytes behind on a thread (a disk that stalls, a
//! terminal that does not read), that thread's further lines are dropped
//! and counted in `crabcat_access_log_dropped_lines_total`. An idle
//! server's writer is parked, and the next line wakes it (then it waits
//! [`BATCH_PAUSE`] for more before it writes).

use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, SystemTime};

use http::header::{REFERER, USER_AGENT};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Version};
use prometheus_client::metrics::counter::Counter;

use crate::config::AccessLogFormat;

mod format;

use format::{Recent, format_line};

/// Written lines reach the file at least this often.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A thread's buffer is handed to the writer once it holds this much.
const HAND_OVER: usize = 64 * 1024;
/// After the first line of a quiet spell wakes the writer, it lets lines
/// gather this long before it takes them.
const BATCH_PAUSE: Duration = Duration::from_millis(10);
/// What one thread's buffer may hold while the writer is behind; its
/// further lines are dropped.
const MOST_PENDING: usize = 1024 * 1024;

/// Why the access log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the access log {path}: {source}")]
pub struct AccessLogError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// What the log needs of a request, taken before the request is handed on:
/// shared handles to its target and headers (reference counts, no copy),
/// kept until the response is complete.
pub struct Access {
    time: SystemTime,
    method: Method,
    version: Version,
    target: Option<PathAndQuery>,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

impl Access {
    fn target(&self) -> &[u8] {
        self.target.as_ref().map_or(b"/", |t| t.as_str().as_bytes())
    }

    fn referer(&self) -> Option<&[u8]> {
        self.referer.as_ref().map(HeaderValue::as_bytes)
    }

    fn user_agent(&self) -> Option<&[u8]> {
        self.user_agent.as_ref().map(HeaderValue::as_bytes)
    }
}

/// One line's facts.
struct Entry<'a> {
    access: &'a Access,
    peer: IpAddr,
    status: u16,
    bytes: Option<u64>,
    latency: Duration,
    app: Option<&'a str>,
}

/// The request side of the access log. Cloning shares it.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
}

/// The writer thread; [`finish`](Self::finish) writes out what is pending.
pub struct AccessLogWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    format: AccessLogFormat,
    /// Every thread's buffer.
    shards: Mutex<Vec<Arc<Shard>>>,
    dropped: Counter,
    /// The writer is parked with nothing pending: the next line wakes it.
    idle: AtomicBool,
    /// The writer is to write what is pending and stop.
    closed: AtomicBool,
    writer: OnceLock<Thread>,
}

/// One thread's lines, not yet written.
#[derive(Default)]
struct Shard {
    pending: Mutex<Pending>,
    /// Its thread has exited: the writer forgets it once it is empty.
    orphaned: AtomicBool,
}

#[derive(Default)]
struct Pending {
    lines: Lines,
    recent: Recent,
}

/// Formatted lines, with the time each request finished: the writer merges
/// the threads' lines in that order, so that the file is in the order the
/// requests were answered, as a single queue would have it.
#[derive(Default)]
struct Lines {
    text: Vec<u8>,
    /// Per line: when its request finished (nanoseconds since the epoch),
    /// and where the line ends in `text`.
    ends: Vec<(u64, usize)>,
}

/// This thread's buffer in each access log it has written to (one, but
/// tests start several). The `Weak` both names the log and keeps its
/// address from being reused.
#[derive(Default)]
struct LocalShards(Vec<(Weak<Shared>, Arc<Shard>)>);

impl Drop for LocalShards {
    fn drop(&mut self) {
        for (_, shard) in &self.0 {
            shard.orphaned.store(true, Ordering::Release);
        }
    }
}

thread_local! {
    static SHARDS: RefCell<LocalShards> = RefCell::default();
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Formatting a line into a `Vec` does not panic; if it ever did, the
    // buffer is still a buffer.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AccessLog {
    /// Opens `file` (standard error when `None`) and starts the writer.
    /// Dropped lines are counted in `dropped`.
    ///
    /// # Errors
    /// If the file cannot be created or opened for appending.
    pub fn start(
        file: Option<&Path>,
        format: AccessLogFormat,
        dropped: Counter,
    ) -> Result<(AccessLog, AccessLogWriter), AccessLogError> {
        let out: Box<dyn Write + Send> = match file {
            Some(path) => Box::new(open_append(path).map_err(|source| AccessLogError {
                path: path.to_path_buf(),
                source,
            })?),
            None => Box::new(std::io::stderr()),
        };
        Self::start_writing(out, format, dropped).map_err(|source| AccessLogError {
            path: file.map_or_else(|| "stderr".into(), Path::to_path_buf),
            source,
        })
    }

    /// Starts the writer on `out`.
    fn start_writing(
        out: Box<dyn Write + Send>,
        format: AccessLogFormat,
        dropped: Counter,
    ) -> std::io::Result<(AccessLog, AccessLogWriter)> {
        let shared = Arc::new(Shared {
            format,
            shards: Mutex::default(),
            dropped,
            idle: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            writer: OnceLock::new(),
        });
        let writer = Writer {
            shared: Arc::clone(&shared),
            out: Output { out, failing: false },
            taken: Vec::new(),
            spares: Vec::new(),
            merged: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("crabcat-access-log".into())
            .spawn(move || writer.run())?;
        let _ = shared.writer.set(thread.thread().clone());
        let log = AccessLog {
            shared: Arc::clone(&shared),
        };
        Ok((
            log,
            AccessLogWriter {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// Takes what the line needs from `request`, before it is consumed.
    pub fn capture(&self, request: &axum::extract::Request) -> Access {
        let headers = request.headers();
        let header = |name| {
            (self.shared.format != AccessLogFormat::Common)
                .then(|| headers.get(name).cloned())
                .flatten()
        };
        Access {
            time: SystemTime::now(),
            method: request.method().clone(),
            version: request.version(),
            target: request.uri().path_and_query().cloned(),
            referer: header(REFERER),
            user_agent: header(USER_AGENT),
        }
    }

    /// Writes the line of a finished request into this thread's buffer;
    /// drops it, and counts the drop, if the writer is that far behind.
    pub fn record(
        &self,
        access: &Access,
        peer: IpAddr,
        status: u16,
        bytes: Option<u64>,
        latency: Duration,
        app: Option<&str>,
    ) {
        let entry = Entry {
            access,
            peer,
            status,
            bytes,
            latency,
            app,
        };
        let shared = &self.shared;
        // Fails only while this thread is being torn down.
        let written = SHARDS.try_with(|local| {
            let mut local = local.borrow_mut();
            let shard = match local.0.iter().find(|(log, _)| Weak::as_ptr(log) == Arc::as_ptr(shared)) {
                Some((_, shard)) => shard,
                None => local.register(shared),
            };
            let mut pending = lock(&shard.pending);
            let before = pending.lines.text.len();
            if before >= MOST_PENDING {
                return None;
            }
            let Pending { lines, recent } = &mut *pending;
            format_line(&mut lines.text, &entry, shared.format, recent);
            let finished = access.time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default() + latency;
            let finished = u64::try_from(finished.as_nanos()).unwrap_or(u64::MAX);
            lines.ends.push((finished, lines.text.len()));
            Some(before < HAND_OVER && lines.text.len() >= HAND_OVER)
        });
        match written {
            Ok(Some(hand_over)) => {
                if hand_over || (shared.idle.load(Ordering::SeqCst) && shared.idle.swap(false, Ordering::SeqCst)) {
                    shared.wake();
                }
            }
            Ok(None) | Err(_) => {
                shared.dropped.inc();
            }
        }
    }
}

impl LocalShards {
    /// A new buffer for this thread in `log`; forgets those of logs that
    /// are gone.
    fn register(&mut self, log: &Arc<Shared>) -> &Arc<Shard> {
        self.0.retain(|(log, _)| log.strong_count() > 0);
        let shard = Arc::new(Shard::default());
        lock(&log.shards).push(Arc::clone(&shard));
        self.0.push((Arc::downgrade(log), shard));
        &self.0[self.0.len() - 1].1
    }
}

impl Shared {
    fn wake(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }
}

impl AccessLogWriter {
    /// Writes out every pending line, flushes, and stops the writer; waits
    /// at most `timeout` for it. Lines recorded after this are lost: call
    /// it once requests have finished.
    pub async fn finish(mut self, timeout: Duration) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let join = tokio::task::spawn_blocking(move || thread.join());
        if tokio::time::timeout(timeout, join).await.is_err() {
            tracing::warn!("the access log writer did not finish in time; some lines may be lost");
        }
    }
}

impl Drop for AccessLogWriter {
    /// Stops the writer (after it writes what is pending) without waiting.
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake();
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

struct Writer {
    shared: Arc<Shared>,
    out: Output,
    /// The lines taken from the threads in this pass.
    taken: Vec<Lines>,
    /// Emptied buffers, given back to the threads in exchange for full ones.
    spares: Vec<Lines>,
    /// Lines of several threads, in order, on their way out.
    merged: Vec<u8>,
}

struct Output {
    out: Box<dyn Write + Send>,
    /// The last write failed (logged once until a write succeeds).
    failing: bool,
}

impl Writer {
    fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        loop {
            let closed = shared.closed.load(Ordering::SeqCst);
            self.write_pending();
            if closed {
                return;
            }
            // Park until the next line if nothing is pending, else until
            // the next flush is due. `idle` is set before the buffers are
            // looked at, so a line written meanwhile sees it and wakes us
            // (an unpark before the park is not lost).
            shared.idle.store(true, Ordering::SeqCst);
            if self.anything_pending() {
                shared.idle.store(false, Ordering::SeqCst);
                std::thread::park_timeout(FLUSH_INTERVAL);
            } else if !shared.closed.load(Ordering::SeqCst) {
                std::thread::park();
                // Woken by the first line after a quiet spell: let more
                // gather, so that a server answering a steady trickle of
                // requests does not wake the writer (and write) per line.
                if !shared.closed.load(Ordering::SeqCst) {
                    std::thread::sleep(BATCH_PAUSE);
                }
            }
        }
    }

    fn anything_pending(&self) -> bool {
        lock(&self.shared.shards)
            .iter()
            .any(|shard| !lock(&shard.pending).lines.text.is_empty())
    }

    /// Takes every thread's lines and writes them out in the order their
    /// requests finished; forgets the buffers of threads that have exited
    /// once they are empty.
    fn write_pending(&mut self) {
        let shards = lock(&self.shared.shards).clone();
        // Every buffer is locked before any is taken: a request whose line
        // missed this pass cannot have been answered yet, so no later
        // request's line (which a client could only send after that
        // answer) can be in it. The file keeps the order of the answers.
        let mut all: Vec<_> = shards.iter().map(|shard| lock(&shard.pending)).collect();
        for pending in all.iter_mut().filter(|p| !p.lines.text.is_empty()) {
            let spare = self.spares.pop().unwrap_or_default();
            self.taken.push(std::mem::replace(&mut pending.lines, spare));
        }
        drop(all);
        match self.taken.as_slice() {
            [] => {}
            [one] => self.out.write(&one.text),
            _ => self.write_merged(),
        }
        for mut lines in self.taken.drain(..) {
            lines.text.clear();
            lines.ends.clear();
            self.spares.push(lines);
        }
        self.out.flush();
        lock(&self.shared.shards)
            .retain(|shard| !(shard.orphaned.load(Ordering::Acquire) && lock(&shard.pending).lines.text.is_empty()));
    }

    /// Writes the lines of several threads, each in order already, merged
    /// by the time their requests finished.
    fn write_merged(&mut self) {
        let Writer { out, taken, merged, .. } = self;
        // Per thread: its next line.
        let mut next = vec![0; taken.len()];
        loop {
            let earliest = (0..taken.len())
                .filter_map(|i| taken[i].ends.get(next[i]).map(|&(finished, _)| (finished, i)))
                .min();
            let Some((_, i)) = earliest else {
                break;
            };
            let lines = &taken[i];
            let start = next[i].checked_sub(1).map_or(0, |before| lines.ends[before].1);
            merged.extend_from_slice(&lines.text[start..lines.ends[next[i]].1]);
            next[i] += 1;
            if merged.len() >= HAND_OVER {
                out.write(merged);
                merged.clear();
            }
        }
        out.write(merged);
        merged.clear();
    }
}

impl Output {
    fn write(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            let result = self.out.write_all(bytes);
            self.note(result);
        }
    }

    fn flush(&mut self) {
        let result = self.out.flush();
        self.note(result);
    }

    fn note(&mut self, result: std::io::Result<()>) {
        match result {
            Ok(()) => self.failing = false,
            Err(error) if !self.failing => {
                self.failing = true;
                tracing::warn!(%error, "cannot write the access log");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines recorded on many threads, some of which exit before the log
    /// closes, all reach the file, whole.
    #[tokio::test]
    async fn every_threads_lines_reach_the_file_at_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let dropped = Counter::default();
        let (log, writer) = AccessLog::start(Some(&path), AccessLogFormat::Combined, dropped.clone()).unwrap();
        let request = http::Request::builder()
            .uri("/hello/?n=1")
            .header(USER_AGENT, "test")
            .body(axum::body::Body::empty())
            .unwrap();
        let access = log.capture(&request);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for n in 0..5_000 {
                        log.record(&access, [127, 0, 0, 1].into(), 200, Some(n), Duration::ZERO, None);
                    }
                });
            }
        });
        log.record(&access, [127, 0, 0, 1].into(), 404, None, Duration::ZERO, None);
        writer.finish(Duration::from_secs(10)).await;
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_001);
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("127.0.0.1 - - [") && l.ends_with("\"-\" \"test\"")),
            "{}",
            lines[0]
        );
        assert_eq!(lines.iter().filter(|l| l.contains("\" 200 4999 ")).count(), 4);
        assert_eq!(dropped.get(), 0);
    }

    /// Output into a buffer the test reads.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines of several threads are written in the order their
    /// requests finished, not a thread's at a time.
    #[test]
    fn the_lines_of_several_threads_are_merged_in_the_order_they_finished() {
        let lines = |finished: &[u64]| {
            let mut lines = Lines::default();
            for &n in finished {
                lines.text.extend_from_slice(format!("{n}\n").as_bytes());
                lines.ends.push((n, lines.text.len()));
            }
            lines
        };
        let file = Captured::default();
        let (log, writer) =
            AccessLog::start_writing(Box::new(std::io::sink()), AccessLogFormat::Common, Counter::default()).unwrap();
        let mut merging = Writer {
            shared: Arc::clone(&log.shared),
            out: Output {
                out: Box::new(file.clone()),
                failing: false,
            },
            taken: vec![lines(&[1, 4, 5, 9]), lines(&[2, 3, 10]), lines(&[]), lines(&[6, 7, 8])],
            spares: Vec::new(),
            merged: Vec::new(),
        };
        merging.write_merged();
        drop(writer);
        let text = String::from_utf8(lock(&file.0).clone()).unwrap();
        assert_eq!(text, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
    }

    /// Output that takes nothing until it is let go.
    struct Stuck(Arc<(Mutex<bool>, std::sync::Condvar)>);

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (free, freed) = &*self.0;
            let _free = freed.wait_while(lock(free), |free| !*free).unwrap();
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// With the output stuck, a thread's lines pile up to `MOST_PENDING`,
    /// then are dropped and counted: recording never waits for the writer.
    #[tokio::test]
    async fn a_stuck_output_drops_lines_instead_of_stalling_requests() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let dropped = Counter::default();
        let (log, writer) = AccessLog::start_writing(
            Box::new(Stuck(Arc::clone(&gate))),
            AccessLogFormat::Common,
            dropped.clone(),
        )
        .unwrap();
        let request = http::Request::builder()
            .uri("/x")
            .body(axum::body::Body::empty())
            .unwrap();
        let access = log.capture(&request);
        // Some 60 bytes a line: well past what one thread may hold.
        let lines = 2 * MOST_PENDING / 60 + HAND_OVER;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..lines {
                    log.record(&access, [127, 0, 0, 1].into(), 200, None, Duration::ZERO, None);
                }
            });
        });
        let dropped_lines = dropped.get();
        assert!(dropped_lines > 0, "nothing dropped of {lines} lines");
        assert!(dropped_lines < lines as u64, "everything dropped");
        *lock(&gate.0) = true;
        gate.1.notify_all();
        writer.finish(Duration::from_secs(10)).await;
    }
}
