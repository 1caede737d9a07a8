//! The clients: connecting them, the reader task of each, the probe that
//! tells they are subscribed, and one fan-out run.
//!
//! Messages are text, `p TAG` (a probe) or `m TAG SENT_US` (a measured
//! message, with its send time on this process's clock). Each step begins
//! a new TAG, so that a late message of an earlier step is not counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Socket, Message>;

/// How many times a handshake is tried before the client counts as failed.
const ATTEMPTS: u32 = 10;
/// A handshake that takes longer is tried again.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for every client to have a probe.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(60);
/// A fan-out run ends when nothing arrived for this long (or all did).
const STALL: Duration = Duration::from_secs(5);

/// What the readers share with the steps.
pub struct Shared {
    clock: Instant,
    tag: AtomicU64,
    open: AtomicUsize,
    /// Clients that have seen a probe of the current tag.
    probed: AtomicUsize,
    /// Measured messages of the current tag received, by every client.
    delivered: AtomicUsize,
    /// When the last of them arrived, in µs on `clock`.
    last_arrival_us: AtomicU64,
    /// Arrival − send of the recording clients, in µs.
    latencies_us: Mutex<Vec<u64>>,
    /// How connections ended: close code (or `lost`) → count.
    closes: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            clock: Instant::now(),
            tag: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            probed: AtomicUsize::new(0),
            delivered: AtomicUsize::new(0),
            last_arrival_us: AtomicU64::new(0),
            latencies_us: Mutex::new(Vec::new()),
            closes: Mutex::new(BTreeMap::new()),
        }
    }

    fn now_us(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    /// How connections ended so far, `code:count,...` (`-` for none).
    pub fn closes(&self) -> String {
        let closes = self.closes.lock().unwrap_or_else(PoisonError::into_inner);
        let list: Vec<String> = closes.iter().map(|(code, n)| format!("{code}:{n}")).collect();
        if list.is_empty() {
            "-".to_owned()
        } else {
            list.join(",")
        }
    }

    /// Starts a step: a new tag, and its counters at zero.
    fn begin(&self) -> u64 {
        self.probed.store(0, Relaxed);
        self.delivered.store(0, Relaxed);
        self.latencies_us.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.tag.fetch_add(1, Relaxed) + 1
    }

    /// One text message arrived at a client.
    fn received(&self, text: &str, recording: bool, probed_tag: &mut u64) {
        let mut words = text.split(' ');
        let kind = words.next();
        let tag = words.next().and_then(|t| t.parse::<u64>().ok());
        if tag.is_none() || tag != Some(self.tag.load(Relaxed)) {
            return;
        }
        match kind {
            Some("p") if *probed_tag != tag.unwrap_or(0) => {
                *probed_tag = tag.unwrap_or(0);
                self.probed.fetch_add(1, Relaxed);
            }
            Some("m") => {
                let now = self.now_us();
                self.delivered.fetch_add(1, Relaxed);
                self.last_arrival_us.fetch_max(now, Relaxed);
                if let (true, Some(sent)) = (recording, words.next().and_then(|s| s.parse::<u64>().ok())) {
                    let mut latencies = self.latencies_us.lock().unwrap_or_else(PoisonError::into_inner);
                    latencies.push(now.saturating_sub(sent));
                }
            }
            _ => {}
        }
    }

    fn closed(&self, how: String) {
        self.open.fetch_sub(1, Relaxed);
        *self
            .closes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(how)
            .or_default() += 1;
    }
}

/// What one fan-out run measured.
pub struct FanOut {
    /// Clients in the room when it started.
    pub members: usize,
    /// Of them, those recording latencies.
    pub recorders: usize,
    pub messages: usize,
    /// Measured messages received by all members.
    pub delivered: usize,
    /// Arrival − send at the recorders, in µs, sorted.
    pub latencies_us: Vec<u64>,
    /// From the first send to the last arrival.
    pub secs: f64,
    /// Connections that closed during the run.
    pub lost: usize,
}

/// Clients in one room: the sending halves (the reader tasks own the others).
pub struct Clients {
    sinks: Vec<Sink>,
    /// Handshakes that had to be tried again.
    pub retries: u64,
}

impl Clients {
    /// Opens `n` connections to `url`, at most `concurrency` handshakes at
    /// once; the first `recording` record latencies. Clients whose every
    /// attempt failed are left out (and reported on standard error).
    pub async fn connect(shared: &Arc<Shared>, url: &str, n: usize, recording: usize, concurrency: usize) -> Clients {
        let gate = Arc::new(Semaphore::new(concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (gate, shared, url) = (Arc::clone(&gate), Arc::clone(shared), url.to_owned());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("never closed");
                (i, connect_one(&shared, &url, i < recording).await)
            });
        }
        let mut sinks = Vec::with_capacity(n);
        let (mut retries, mut failures) = (0, BTreeMap::<String, usize>::new());
        while let Some(joined) = tasks.join_next().await {
            let Ok((i, (result, tries))) = joined else { continue };
            retries += u64::from(tries - 1);
            match result {
                Ok(sink) => sinks.push((i, sink)),
                Err(e) => *failures.entry(e).or_default() += 1,
            }
        }
        for (error, count) in failures {
            eprintln!("ws-load: {count} clients could not connect to {url}: {error}");
        }
        sinks.sort_by_key(|(i, _)| *i);
        Clients {
            sinks: sinks.into_iter().map(|(_, sink)| sink).collect(),
            retries,
        }
    }

    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// The first `n` clients, as a group of their own.
    pub fn split_off_first(&mut self, n: usize) -> Clients {
        let rest = self.sinks.split_off(n.min(self.sinks.len()));
        Clients {
            sinks: std::mem::replace(&mut self.sinks, rest),
            retries: 0,
        }
    }

    /// Closes every client (code 1000) and waits (up to 10 s) until the
    /// server has answered each close.
    pub async fn leave(&mut self, shared: &Shared) {
        let target = shared.open().saturating_sub(self.sinks.len());
        for sink in &mut self.sinks {
            let _ = sink.send(Message::Close(None)).await;
        }
        self.sinks.clear();
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.open() > target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Publishes a probe every 250 ms until `members` clients have received
    /// one (or a minute passed). Returns how many did.
    pub async fn wait_subscribed(&mut self, shared: &Shared, members: usize) -> usize {
        let tag = shared.begin();
        let deadline = Instant::now() + SUBSCRIBE_TIMEOUT;
        while let (Some(publisher), true) = (self.sinks.first_mut(), Instant::now() < deadline) {
            if publisher.send(Message::text(format!("p {tag}"))).await.is_err() {
                break;
            }
            for _ in 0..25 {
                if shared.probed.load(Relaxed) >= members {
                    return members;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let probed = shared.probed.load(Relaxed);
        eprintln!("ws-load: only {probed} of {members} clients got a probe");
        probed
    }

    /// The first client publishes `messages` messages at `rate` a second;
    /// waits until every client has them all, or none arrived for 5 s.
    pub async fn fan_out(&mut self, shared: &Shared, messages: usize, rate: f64, recorders: usize) -> FanOut {
        let open_before = shared.open();
        let members = open_before.min(self.sinks.len());
        let tag = shared.begin();
        let first_send = shared.now_us();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        for _ in 0..messages {
            tick.tick().await;
            let text = format!("m {tag} {}", shared.now_us());
            let Some(publisher) = self.sinks.first_mut() else { break };
            if publisher.send(Message::text(text)).await.is_err() {
                eprintln!("ws-load: the publishing client was closed");
                break;
            }
        }
        let (mut seen, mut since) = (0, Instant::now());
        loop {
            let delivered = shared.delivered.load(Relaxed);
            if delivered >= messages * members || since.elapsed() > STALL {
                break;
            }
            if delivered != seen {
                (seen, since) = (delivered, Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut latencies_us = std::mem::take(&mut *shared.latencies_us.lock().unwrap_or_else(PoisonError::into_inner));
        latencies_us.sort_unstable();
        let last = shared.last_arrival_us.load(Relaxed);
        FanOut {
            members,
            recorders: recorders.min(members),
            messages,
            delivered: shared.delivered.load(Relaxed),
            latencies_us,
            secs: last.saturating_sub(first_send) as f64 / 1e6,
            lost: open_before.saturating_sub(shared.open()),
        }
    }
}

/// One client: the handshake (tried up to 10 times), then its reader task.
/// Returns the sending half and the number of attempts.
async fn connect_one(shared: &Arc<Shared>, url: &str, recording: bool) -> (Result<Sink, String>, u32) {
    // Small buffers: the generator's own memory is not what is measured,
    // but 10,000 × 128 KiB would be felt.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let mut error = String::new();
    for attempt in 1..=ATTEMPTS {
        let handshake = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok((socket, _))) => {
                let (sink, stream) = socket.split();
                shared.open.fetch_add(1, Relaxed);
                tokio::spawn(read(Arc::clone(shared), stream, recording));
                return (Ok(sink), attempt);
            }
            Ok(Err(e)) => error = e.to_string(),
            Err(_) => error = "handshake timed out".to_owned(),
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
    }
    (Err(error), ATTEMPTS)
}

/// Reads until the connection ends (tungstenite answers pings meanwhile).
async fn read(shared: Arc<Shared>, mut stream: SplitStream<Socket>, recording: bool) {
    let mut probed_tag = 0;
    let mut how = "lost".to_owned();
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(Message::Text(text)) => shared.received(&text, recording, &mut probed_tag),
            Ok(Message::Close(frame)) => how = frame.map_or("1005".to_owned(), |f| u16::from(f.code).to_string()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    shared.closed(how);
}
