//! Values that every worker thread writes on the request path, kept per
//! stripe of threads so that no two threads share a cache line: counters
//! ([`StripedU64`], one cell per stripe, summed when read) and reference
//! counts ([`StripedArc`], one `Arc` per stripe). An atomic add on a line
//! another core has just written waits for that core to give it up; with
//! every worker counting the same app's requests and referencing the same
//! app, those waits grow with the number of cores. (On two cores the
//! difference does not show in `bench/run.sh`; `bench/contention.sh`
//! prices one reference, and `docs/src/performance.md` says more.) Each
//! takes a cache line or two per stripe: about 1–2 KiB on two cores.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use crossbeam_utils::CachePadded;
use prometheus_client::metrics::counter::Atomic;

/// Stripes of every striped value (counters, references, shares): a power
/// of two, four per core, so that the first threads (the runtime's workers
/// among them) each get their own.
static STRIPES: LazyLock<usize> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (cores * 4).next_power_of_two().min(256)
});

/// The stripe of the calling thread: threads take them in turn as they
/// first count something.
pub fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    STRIPE.with(|s| *s) & (*STRIPES - 1)
}

/// One value per stripe, each on its own cache line.
#[derive(Debug)]
pub struct Stripes<T>(Box<[CachePadded<T>]>);

impl<T: Default> Default for Stripes<T> {
    fn default() -> Self {
        Stripes::new(|_| T::default())
    }
}

impl<T> Stripes<T> {
    /// Stripes made by `make`, given each stripe's index.
    pub fn new(make: impl FnMut(usize) -> T) -> Self {
        Stripes((0..*STRIPES).map(make).map(CachePadded::new).collect())
    }

    /// The calling thread's stripe.
    pub fn local(&self) -> &T {
        &self.0[stripe()]
    }

    /// Stripe `index` (as [`stripe`] numbers them).
    pub fn get(&self, index: usize) -> &T {
        &self.0[index]
    }

    /// Every stripe.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|s| &**s)
    }
}

/// A counter in stripes: adding touches only the calling thread's line,
/// reading sums them all.
#[derive(Debug, Default)]
pub struct StripedU64(Stripes<AtomicU64>);

impl StripedU64 {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.local().fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of every stripe.
    pub fn get(&self) -> u64 {
        self.0
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// So that a Prometheus [`Counter`](prometheus_client::metrics::counter::Counter)
/// can count in stripes. `inc` and `inc_by` return the calling thread's
/// stripe before the add, not the counter's total (nothing here uses it).
impl Atomic<u64> for StripedU64 {
    fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    fn inc_by(&self, v: u64) -> u64 {
        self.0.local().fetch_add(v, Ordering::Relaxed)
    }

    fn get(&self) -> u64 {
        StripedU64::get(self)
    }
}

/// A shared value whose references count in stripes: each stripe holds
/// its own `Arc` of the value, so taking and dropping a reference
/// ([`StripedArc::local`]) writes only a count on a line of the calling
/// thread's. What the request path takes of an app, where one `Arc` count
/// would be written by every worker for every request. Costs two cache
/// lines per stripe.
pub struct StripedArc<T>(Stripes<Arc<CachePadded<Arc<T>>>>);

/// A reference to a [`StripedArc`]'s value, counted on one stripe.
pub struct StripeRef<T>(Arc<CachePadded<Arc<T>>>);

impl<T> StripedArc<T> {
    /// `value`, referenced from every stripe.
    pub fn new(value: Arc<T>) -> Self {
        StripedArc(Stripes::new(|_| Arc::new(CachePadded::new(Arc::clone(&value)))))
    }

    /// A reference counted on the calling thread's stripe.
    pub fn local(&self) -> StripeRef<T> {
        StripeRef(Arc::clone(self.0.local()))
    }

    /// The value's own `Arc` (cloning it writes the shared count).
    pub fn shared(&self) -> &Arc<T> {
        self.0.get(0)
    }
}

impl<T> std::ops::Deref for StripedArc<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.shared()
    }
}

impl<T> Clone for StripeRef<T> {
    fn clone(&self) -> Self {
        StripeRef(Arc::clone(&self.0))
    }
}

impl<T> std::ops::Deref for StripeRef<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for StripeRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for StripedArc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stripes_of_many_threads_add_up() {
        let counter = StripedU64::default();
        std::thread::scope(|scope| {
            for _ in 0..(*STRIPES + 3) {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        counter.add(1);
                    }
                    Atomic::inc_by(&counter, 5);
                });
            }
        });
        assert_eq!(counter.get(), (*STRIPES as u64 + 3) * 1005);
        assert!(stripe() < *STRIPES);
    }

    #[test]
    fn a_striped_arc_counts_references_on_its_stripes_and_lets_go_with_the_last() {
        let value = Arc::new(7);
        let striped = StripedArc::new(Arc::clone(&value));
        assert_eq!(Arc::strong_count(&value), 1 + *STRIPES);
        let refs: Vec<StripeRef<i32>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4).map(|_| scope.spawn(|| striped.local())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(refs.iter().all(|r| **r == 7) && *striped == 7);
        assert_eq!(
            Arc::strong_count(&value),
            1 + *STRIPES,
            "references count on the stripes, not on the value"
        );
        drop(striped);
        assert!(Arc::strong_count(&value) > 1, "the references keep it");
        drop(refs);
        assert_eq!(Arc::strong_count(&value), 1);
    }
}
