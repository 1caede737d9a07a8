//! The access log, off the request path. A request hands its facts (an
//! [`Entry`]: a few reference-counted handles and numbers, nothing
//! formatted) to a bounded queue and goes on; a thread of its own formats
//! the lines and writes them through a buffer, flushed at least every
//! [`FLUSH_INTERVAL`] and on shutdown ([`AccessLogWriter::finish`]).
//!
//! A full queue never stalls a request: the line is dropped and counted in
//! `crabcat_access_log_dropped_lines_total`. The writer takes lines in
//! batches ([`BATCH_PAUSE`]) so that, under load, requests never have to
//! wake it: it is only parked, and woken by a request, when the server
//! is idle.

use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use http::header::{REFERER, USER_AGENT};
use http::{HeaderValue, Method, Version};
use prometheus_client::metrics::counter::Counter;

use crate::config::AccessLogFormat;

mod format;

use format::{Clock, format_line};

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 4096;
/// Buffered lines reach the file at least this often.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// After a wake-up, the writer lets lines gather this long before it takes
/// them, so that a busy server does not wake it once per line.
const BATCH_PAUSE: Duration = Duration::from_millis(10);
/// The write buffer.
const BUFFER: usize = 64 * 1024;

/// Why the access log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the access log {path}: {source}")]
pub struct AccessLogError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// What the log needs of a request, taken before the request is handed on.
///
/// The strings are copied, once, into one buffer: the request's own `Uri`
/// and header values share the connection's read buffer, and holding them
/// until the writer gets to the line would keep that buffer from being
/// reused.
pub struct Access {
    time: SystemTime,
    method: Method,
    version: Version,
    /// The request target, then the referer, then the user agent.
    text: Vec<u8>,
    target_end: usize,
    referer_end: Option<usize>,
    agent_end: Option<usize>,
}

impl Access {
    fn target(&self) -> &[u8] {
        &self.text[..self.target_end]
    }

    fn referer(&self) -> Option<&[u8]> {
        Some(&self.text[self.target_end..self.referer_end?])
    }

    fn user_agent(&self) -> Option<&[u8]> {
        let start = self.referer_end.unwrap_or(self.target_end);
        Some(&self.text[start..self.agent_end?])
    }
}

/// One line's facts, formatted by the writer.
struct Entry {
    access: Access,
    peer: IpAddr,
    status: u16,
    bytes: Option<u64>,
    latency: Duration,
    app: Option<Arc<str>>,
}

enum Message {
    Line(Entry),
    Close,
}

/// The request side of the access log. Cloning shares the queue.
#[derive(Clone)]
pub struct AccessLog {
    queue: SyncSender<Message>,
    dropped: Counter,
    referer_and_agent: bool,
}

/// The writer thread; [`finish`](Self::finish) writes out what is queued.
pub struct AccessLogWriter {
    queue: SyncSender<Message>,
    thread: JoinHandle<()>,
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
        let (queue, lines) = mpsc::sync_channel(QUEUE);
        let writer = Writer {
            out: BufWriter::with_capacity(BUFFER, out),
            format,
            clock: Clock::default(),
            line: Vec::with_capacity(512),
            failing: false,
        };
        let thread = std::thread::Builder::new()
            .name("crabcat-access-log".into())
            .spawn(move || writer.run(&lines))
            .map_err(|source| AccessLogError {
                path: file.map_or_else(|| "stderr".into(), Path::to_path_buf),
                source,
            })?;
        let log = AccessLog {
            queue: queue.clone(),
            dropped,
            referer_and_agent: format != AccessLogFormat::Common,
        };
        Ok((log, AccessLogWriter { queue, thread }))
    }

    /// Takes what the line needs from `request`, before it is consumed.
    pub fn capture(&self, request: &axum::extract::Request) -> Access {
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let headers = request.headers();
        let header = |name| self.referer_and_agent.then(|| headers.get(name)).flatten();
        let (referer, agent) = (header(REFERER), header(USER_AGENT));
        let length = |h: Option<&HeaderValue>| h.map_or(0, HeaderValue::len);
        let mut text = Vec::with_capacity(target.len() + length(referer) + length(agent));
        text.extend_from_slice(target.as_bytes());
        let target_end = text.len();
        let mut append = |h: Option<&HeaderValue>| {
            h.map(|v| {
                text.extend_from_slice(v.as_bytes());
                text.len()
            })
        };
        let referer_end = append(referer);
        let agent_end = append(agent);
        Access {
            time: SystemTime::now(),
            method: request.method().clone(),
            version: request.version(),
            text,
            target_end,
            referer_end,
            agent_end,
        }
    }

    /// Queues the line of a finished request; drops it, and counts the
    /// drop, if the writer is that far behind.
    pub fn record(
        &self,
        access: Access,
        peer: IpAddr,
        status: u16,
        bytes: Option<u64>,
        latency: Duration,
        app: Option<Arc<str>>,
    ) {
        let entry = Entry {
            access,
            peer,
            status,
            bytes,
            latency,
            app,
        };
        match self.queue.try_send(Message::Line(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

impl AccessLogWriter {
    /// Writes out every queued line, flushes, and stops the writer; waits
    /// at most `timeout` for it.
    pub async fn finish(self, timeout: Duration) {
        let AccessLogWriter { queue, thread } = self;
        let join = tokio::task::spawn_blocking(move || {
            // Blocks only while the queue is full, which the writer is emptying.
            let _ = queue.send(Message::Close);
            let _ = thread.join();
        });
        if tokio::time::timeout(timeout, join).await.is_err() {
            tracing::warn!("the access log writer did not finish in time; some lines may be lost");
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

struct Writer {
    out: BufWriter<Box<dyn Write + Send>>,
    format: AccessLogFormat,
    clock: Clock,
    line: Vec<u8>,
    /// The last write failed (logged once until a write succeeds).
    failing: bool,
}

impl Writer {
    fn run(mut self, lines: &Receiver<Message>) {
        let mut unflushed_since: Option<Instant> = None;
        loop {
            let message = match unflushed_since {
                None => lines.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(since) => lines.recv_timeout(FLUSH_INTERVAL.saturating_sub(since.elapsed())),
            };
            match message {
                Ok(Message::Line(entry)) => {
                    self.write(&entry);
                    unflushed_since.get_or_insert_with(Instant::now);
                    std::thread::sleep(BATCH_PAUSE);
                    if self.drain(lines) {
                        return self.flush();
                    }
                }
                Ok(Message::Close) | Err(RecvTimeoutError::Disconnected) => {
                    self.drain(lines);
                    return self.flush();
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if unflushed_since.is_some_and(|since| since.elapsed() >= FLUSH_INTERVAL) {
                self.flush();
                unflushed_since = None;
            }
        }
    }

    /// Writes every queued line; `true` if the log was closed meanwhile.
    fn drain(&mut self, lines: &Receiver<Message>) -> bool {
        while let Ok(message) = lines.try_recv() {
            match message {
                Message::Line(entry) => self.write(&entry),
                Message::Close => return true,
            }
        }
        false
    }

    fn write(&mut self, entry: &Entry) {
        self.line.clear();
        format_line(&mut self.line, entry, self.format, &mut self.clock);
        let result = self.out.write_all(&self.line);
        self.note(result);
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
