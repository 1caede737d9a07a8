//! The stall watchdog: notices module code that runs on a worker thread
//! without yielding.
//!
//! An async handler that never reaches an `.await` (a busy loop, a long
//! computation, a blocking call outside `blocking(...)`) keeps the tokio
//! worker thread it runs on. Nothing in the process can pre-empt it: the
//! request timeout is itself a future on that thread. The container has as
//! many workers as cores, so a few such handlers stall every app.
//!
//! What the container does about it: each poll of module code (handlers,
//! response streams, spawned tasks) marks its thread with the app's id and
//! a sequence number (two stores and two loads, about 25 instructions). A
//! watchdog thread looks at the
//! marks every quarter of `server.stall_timeout`; a mark that has not
//! changed for the whole timeout is a stalled thread. The app is then
//! reported (an error log line naming it and the thread), counted in
//! `/metrics` and the admin API, and, while one of its threads is stalled,
//! refused new requests with `503` so that it cannot take the remaining
//! workers too. When the poll returns, the app is served again and the
//! stall's length is logged.
//!
//! An app with threads of its own (`apps.NAME.worker_threads`) stalls only
//! those; its requests still get `504` from the shared workers.
//!
//! The watchdog sleeps while no module code has run for a few of its
//! periods: an idle container has no timer here.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// One app's stall record, shared by all its instances; lives for the
/// process (one per app name ever deployed).
#[derive(Debug)]
pub struct AppWatch {
    name: Arc<str>,
    id: u32,
    stalled: AtomicUsize,
    stalls: AtomicU64,
}

impl AppWatch {
    /// The watch of app `name`: the same one for every instance.
    pub fn of(name: &str) -> &'static AppWatch {
        let mut apps = apps().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&watch) = apps.by_name.get(name) {
            return watch;
        }
        let id = u32::try_from(apps.by_id.len() + 1).expect("fewer than 2^32 app names");
        let watch: &'static AppWatch = Box::leak(Box::new(AppWatch {
            name: name.into(),
            id,
            stalled: AtomicUsize::new(0),
            stalls: AtomicU64::new(0),
        }));
        apps.by_name.insert(name.into(), watch);
        apps.by_id.push(watch);
        watch
    }

    /// Threads stalled in this app's code now.
    pub fn stalled(&self) -> usize {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Stalls seen since the container started.
    pub fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }

    /// Runs `poll` (one poll of this app's code) with the thread marked:
    /// two loads and two stores, one of them sequentially consistent.
    #[inline]
    pub fn poll<T>(&self, poll: impl FnOnce() -> T) -> T {
        let mark = SEQUENCE.with(|s| {
            let next = s.get().wrapping_add(1);
            s.set(next);
            u64::from(next) << 32 | u64::from(self.id)
        });
        let mut poll = Some(poll);
        let marked = SLOT.try_with(|slot| {
            // Only this thread writes its mark; the watchdog reads it.
            let previous = slot.mark.load(Ordering::Relaxed);
            // Stored before `ARMED` is read, as the watchdog clears `ARMED`
            // before it reads the marks: either it sees this mark, or this
            // poll sees it asleep and wakes it.
            slot.mark.store(mark, Ordering::SeqCst);
            if !ARMED.load(Ordering::SeqCst) {
                arm();
            }
            let _restore = Restore { slot, previous };
            poll.take().map(|poll| poll())
        });
        match (marked, poll) {
            (Ok(Some(out)), _) => out,
            // A thread being torn down (its thread-locals gone) polls unwatched.
            (_, Some(poll)) => poll(),
            (_, None) => unreachable!("the poll ran or was handed back"),
        }
    }
}

impl AppWatch {
    /// `future`, each of its polls marked as this app's code.
    pub fn watched<F: Future + Unpin>(&'static self, future: F) -> Watched<F> {
        Watched { watch: self, future }
    }
}

/// A module's future, each poll marked as its app's code. Module futures
/// are boxes behind a C vtable (`Unpin`): this adds one pointer to them.
pub struct Watched<F> {
    watch: &'static AppWatch,
    future: F,
}

impl<F: Future + Unpin> Future for Watched<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let this = self.get_mut();
        this.watch.poll(|| std::pin::Pin::new(&mut this.future).poll(cx))
    }
}

/// A thread's mark: `0` when it runs no module code, else the app id in
/// the low 32 bits and the poll's sequence number in the high ones.
struct ThreadSlot {
    mark: AtomicU64,
    thread: Thread,
}

thread_local! {
    static SLOT: Arc<ThreadSlot> = register();
    static SEQUENCE: Cell<u32> = const { Cell::new(0) };
}

/// The watchdog is awake, or module code ran since it went to sleep.
static ARMED: AtomicBool = AtomicBool::new(false);
static WATCHDOG: OnceLock<Thread> = OnceLock::new();

fn register() -> Arc<ThreadSlot> {
    let slot = Arc::new(ThreadSlot {
        mark: AtomicU64::new(0),
        thread: std::thread::current(),
    });
    let mut threads = threads().lock().unwrap_or_else(|e| e.into_inner());
    threads.retain(|t| t.strong_count() > 0);
    threads.push(Arc::downgrade(&slot));
    slot
}

/// Puts the outer mark back (nested polls), also when the poll panics.
struct Restore<'a> {
    slot: &'a ThreadSlot,
    previous: u64,
}

impl Drop for Restore<'_> {
    #[inline]
    fn drop(&mut self) {
        self.slot.mark.store(self.previous, Ordering::Relaxed);
    }
}

#[cold]
fn arm() {
    if !ARMED.swap(true, Ordering::SeqCst)
        && let Some(thread) = WATCHDOG.get()
    {
        thread.unpark();
    }
}

#[derive(Default)]
struct Apps {
    by_name: HashMap<Arc<str>, &'static AppWatch>,
    by_id: Vec<&'static AppWatch>,
}

fn apps() -> &'static Mutex<Apps> {
    static APPS: OnceLock<Mutex<Apps>> = OnceLock::new();
    APPS.get_or_init(Mutex::default)
}

fn threads() -> &'static Mutex<Vec<Weak<ThreadSlot>>> {
    static THREADS: OnceLock<Mutex<Vec<Weak<ThreadSlot>>>> = OnceLock::new();
    THREADS.get_or_init(Mutex::default)
}

/// The app of a mark.
fn app_of(mark: u64) -> Option<&'static AppWatch> {
    let id = (mark & u64::from(u32::MAX)) as usize;
    let apps = apps().lock().unwrap_or_else(|e| e.into_inner());
    apps.by_id.get(id.checked_sub(1)?).copied()
}

/// Starts the watchdog thread, which reports module code that has run
/// for `timeout` without yielding. A zero timeout starts nothing (the
/// marks are still set).
///
/// Only the first call starts it (one watchdog per process).
///
/// # Panics
/// If the thread cannot be spawned.
pub fn start(timeout: Duration) {
    if timeout.is_zero() || WATCHDOG.get().is_some() {
        return;
    }
    let period = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let thread = std::thread::Builder::new()
        .name("crabcat-watchdog".into())
        .spawn(move || Watchdog::default().run(timeout, period))
        .expect("spawning the watchdog thread");
    if WATCHDOG.set(thread.thread().clone()).is_ok() {
        arm();
    }
}

/// What the watchdog remembers of the threads: the mark it last saw on
/// each, since when, and whether it reported it.
#[derive(Default)]
struct Watchdog {
    seen: Vec<Seen>,
}

struct Seen {
    slot: Weak<ThreadSlot>,
    mark: u64,
    since: Instant,
    reported: bool,
}

impl Watchdog {
    fn run(mut self, timeout: Duration, period: Duration) {
        let mut quiet = 0;
        loop {
            std::thread::sleep(period);
            let busy = self.look(Instant::now(), timeout);
            quiet = if busy { 0 } else { quiet + 1 };
            if quiet >= 8 {
                // Nothing ran for 8 periods: sleep until module code runs.
                // A poll that starts after `ARMED` is cleared re-arms it,
                // and an unpark before the park makes the park return.
                ARMED.store(false, Ordering::SeqCst);
                if !self.look(Instant::now(), timeout) {
                    std::thread::park();
                }
                ARMED.store(true, Ordering::SeqCst);
                quiet = 0;
            }
        }
    }

    /// Looks at every thread's mark once; reports the stalls that reach
    /// `timeout` and ends those whose poll returned. Whether any thread
    /// runs module code.
    fn look(&mut self, now: Instant, timeout: Duration) -> bool {
        let slots: Vec<Arc<ThreadSlot>> = threads()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        self.seen
            .retain(|s| s.slot.strong_count() > 0 || s.reported && end(s, now));
        let mut busy = false;
        for slot in &slots {
            let mark = slot.mark.load(Ordering::SeqCst);
            busy |= mark != 0;
            match self
                .seen
                .iter_mut()
                .find(|s| std::ptr::eq(s.slot.as_ptr(), Arc::as_ptr(slot)))
            {
                Some(seen) if seen.mark == mark => {
                    if mark != 0 && !seen.reported && now.duration_since(seen.since) >= timeout {
                        seen.reported = report(slot, mark, now.duration_since(seen.since));
                    }
                }
                Some(seen) => {
                    if seen.reported {
                        end(seen, now);
                    }
                    (seen.mark, seen.since, seen.reported) = (mark, now, false);
                }
                None => self.seen.push(Seen {
                    slot: Arc::downgrade(slot),
                    mark,
                    since: now,
                    reported: false,
                }),
            }
        }
        busy
    }
}

/// Reports the poll `mark` on `slot`'s thread stalled.
fn report(slot: &ThreadSlot, mark: u64, stalled_for: Duration) -> bool {
    let Some(app) = app_of(mark) else { return false };
    app.stalled.fetch_add(1, Ordering::Relaxed);
    app.stalls.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        app = &*app.name,
        thread = slot.thread.name().unwrap_or("?"),
        stalled_secs = stalled_for.as_secs_f64(),
        "a handler of this app has run without yielding (a loop or a blocking call in async \
         code); its worker thread serves nothing else until it returns, and the app gets no \
         new requests (503) meanwhile. Blocking work belongs in `blocking(...)`"
    );
    true
}

/// Ends a reported stall: the poll returned (or its thread is gone).
/// Returns `false`, for `retain`.
fn end(seen: &Seen, now: Instant) -> bool {
    if let Some(app) = app_of(seen.mark) {
        app.stalled.fetch_sub(1, Ordering::Relaxed);
        tracing::warn!(
            app = &*app.name,
            stalled_secs = now.duration_since(seen.since).as_secs_f64(),
            "the stalled handler returned; the app is served again"
        );
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_watch_per_app_name() {
        let a = AppWatch::of("watch-test-a");
        assert!(std::ptr::eq(a, AppWatch::of("watch-test-a")));
        assert_ne!(a.id, AppWatch::of("watch-test-b").id);
        assert_eq!(app_of(u64::from(a.id) | 7 << 32).map(|w| w.id), Some(a.id));
        assert!(app_of(0).is_none());
    }

    #[test]
    fn a_poll_marks_its_thread_and_restores_the_outer_mark() {
        let (a, b) = (AppWatch::of("watch-test-c"), AppWatch::of("watch-test-d"));
        let slot = SLOT.with(Arc::clone);
        let app = |s: &ThreadSlot| s.mark.load(Ordering::Relaxed) & u64::from(u32::MAX);
        let out = a.poll(|| {
            assert_eq!(app(&slot), u64::from(a.id));
            b.poll(|| assert_eq!(app(&slot), u64::from(b.id)));
            assert_eq!(app(&slot), u64::from(a.id));
            7
        });
        assert_eq!(out, 7);
        assert_eq!(slot.mark.load(Ordering::Relaxed), 0);
        let first = std::panic::catch_unwind(|| a.poll(|| panic!("a panicking poll")));
        assert!(first.is_err());
        assert_eq!(slot.mark.load(Ordering::Relaxed), 0, "restored on unwind too");
    }

    /// One test: two watchdogs driven by hand in parallel tests would
    /// see each other's marks.
    #[test]
    fn a_mark_that_stays_is_reported_once_and_short_polls_never() {
        let app = AppWatch::of("watch-test-e");
        let mut watchdog = Watchdog::default();
        let timeout = Duration::from_secs(2);
        let t0 = Instant::now();
        app.poll(|| {
            // Driven by hand: the watchdog looks at t0, t0+1s, t0+2s, t0+3s.
            assert!(watchdog.look(t0, timeout));
            assert!(watchdog.look(t0 + Duration::from_secs(1), timeout));
            assert_eq!(app.stalled(), 0, "not yet");
            watchdog.look(t0 + timeout, timeout);
            watchdog.look(t0 + Duration::from_secs(3), timeout);
            assert_eq!((app.stalled(), app.stalls()), (1, 1), "reported once");
        });
        watchdog.look(t0 + Duration::from_secs(4), timeout);
        assert_eq!((app.stalled(), app.stalls()), (0, 1), "ended when the poll returned");

        let app = AppWatch::of("watch-test-f");
        let mut watchdog = Watchdog::default();
        let t0 = Instant::now();
        for second in 0..10 {
            app.poll(|| watchdog.look(t0 + Duration::from_secs(second), Duration::from_secs(2)));
        }
        assert_eq!(app.stalls(), 0, "each look saw a new poll");
    }
}
