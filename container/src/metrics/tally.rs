//! A plain per-app tally of requests by latency bucket, and its errors,
//! that the console's history samples without the Prometheus encoder.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::striped::Stripes;

/// Upper bounds of the tally's latency buckets, in seconds: 100 µs
/// doubling to ~3.3 s (the Prometheus histogram's), then one for the rest.
pub const TALLY_BOUNDS: [f64; 16] = {
    let mut bounds = [0.0; 16];
    let mut i = 0;
    let mut bound = 0.0001;
    while i < 16 {
        bounds[i] = bound;
        bound *= 2.0;
        i += 1;
    }
    bounds
};

/// Buckets of a [`Tally`]: one per bound, and one above the last.
pub const TALLY_BUCKETS: usize = TALLY_BOUNDS.len() + 1;

/// An app's requests in plain atomics: per latency bucket, their total
/// time, and the server errors (`5xx`) among them. Counting costs two
/// relaxed atomic adds (three for an error) on the calling thread's own
/// cache line ([`Stripes`]), and no lock. It is also the app's Prometheus
/// latency histogram ([`LatencyHistogram`]), so requests are counted once,
/// not once for the console and again under the histogram's lock.
#[derive(Debug, Default)]
pub struct Tally(Stripes<Counts>);

/// One stripe of a [`Tally`].
#[derive(Debug, Default)]
struct Counts {
    buckets: [AtomicU64; TALLY_BUCKETS],
    errors: AtomicU64,
    /// Total latency, in nanoseconds (overflows after 584 years of it).
    nanos: AtomicU64,
}

/// A [`Tally`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TallySnapshot {
    /// Requests per latency bucket (see [`TALLY_BOUNDS`]), since the start.
    pub buckets: [u64; TALLY_BUCKETS],
    /// Responses with a `5xx` status, since the start.
    pub errors: u64,
}

impl TallySnapshot {
    /// Requests counted, since the start.
    pub fn requests(&self) -> u64 {
        self.buckets.iter().sum()
    }
}
impl Tally {
    pub(super) fn count(&self, status: u16, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let counts = self.0.local();
        counts.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        counts.nanos.fetch_add(nanos, Ordering::Relaxed);
        if status >= 500 {
            counts.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> TallySnapshot {
        let mut snapshot = TallySnapshot::default();
        for counts in self.0.iter() {
            for (sum, bucket) in snapshot.buckets.iter_mut().zip(&counts.buckets) {
                *sum += bucket.load(Ordering::Relaxed);
            }
            snapshot.errors += counts.errors.load(Ordering::Relaxed);
        }
        snapshot
    }

    /// The total latency counted, in nanoseconds.
    fn nanos(&self) -> u64 {
        self.0
            .iter()
            .map(|c| c.nanos.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// The bucket of a latency of `nanos`: the first whose bound is not below
/// it. The bounds double from 100 µs, so it is the bit length of the
/// latency in whole (rounded up) 100 µs: no floating point, no search.
fn bucket_of(nanos: u64) -> usize {
    const FIRST_BOUND_NANOS: u64 = 100_000;
    let units = nanos.saturating_sub(1) / FIRST_BOUND_NANOS;
    ((u64::BITS - units.leading_zeros()) as usize).min(TALLY_BUCKETS - 1)
}

/// An app's [`Tally`], encoded as the Prometheus histogram
/// `crabcat_request_duration_seconds` (the same buckets, `le` each bound).
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram(pub Arc<Tally>);

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.0.snapshot();
        let sum = self.0.nanos() as f64 / 1e9;
        // Per bucket, not cumulative: the encoder adds them up; the last
        // bound, `f64::MAX`, is written `+Inf`.
        let buckets: Vec<(f64, u64)> = TALLY_BOUNDS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(counts.buckets)
            .collect();
        encoder.encode_histogram::<NoLabelSet>(sum, counts.requests(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_by_latency_bucket_and_server_errors() {
        let tally = Tally::default();
        tally.count(200, Duration::from_micros(50)); // below the first bound
        tally.count(200, Duration::from_micros(100)); // on it: still the first
        tally.count(503, Duration::from_millis(3)); // 1.6 ms < 3 ms <= 3.2 ms
        tally.count(404, Duration::from_secs(60)); // above the last bound
        let snapshot = tally.snapshot();
        assert_eq!(snapshot.buckets[0], 2);
        assert_eq!(snapshot.buckets[5], 1, "{:?}", snapshot.buckets);
        assert_eq!(snapshot.buckets[TALLY_BUCKETS - 1], 1);
        assert_eq!(snapshot.requests(), 4);
        assert_eq!(snapshot.errors, 1, "only 5xx are errors");
    }

    #[test]
    fn each_latency_falls_in_the_first_bucket_whose_bound_is_not_below_it() {
        for (i, bound) in TALLY_BOUNDS.iter().enumerate() {
            let nanos = (bound * 1e9).round() as u64;
            assert_eq!(bucket_of(nanos), i, "on bound {bound}");
            assert_eq!(bucket_of(nanos + 1), i + 1, "just above bound {bound}");
            let below = nanos - 1;
            let expected = TALLY_BOUNDS.partition_point(|&b| b < below as f64 / 1e9);
            assert_eq!(bucket_of(below), expected, "just below bound {bound}");
        }
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(u64::MAX), TALLY_BUCKETS - 1);
    }
}
