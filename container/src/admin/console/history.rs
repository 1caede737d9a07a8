//! The console's short history per app: request rate, server errors and
//! latency quantiles over the last minutes, as points computed from the
//! differences between two readings of the apps' [`Tally`](crate::metrics::Tally).
//!
//! Sampling is lazy: a reading is taken only when someone asks for the
//! history (the console polls while it is open; `crabcat status`), and at
//! most once per [`SAMPLE_EVERY`]. An idle container, watched by no one,
//! does nothing at all. Between two readings further apart than
//! [`MAX_GAP`] no point is made (nobody watched; an average over the gap
//! would be drawn as if it were recent): the later reading only becomes the
//! base of the next point.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::metrics::{TALLY_BOUNDS, TALLY_BUCKETS, TallySnapshot};

/// The shortest time between two readings: one point per app per this.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Points kept per app: ten minutes of them.
pub const KEEP: usize = 120;
/// Readings further apart than this make no point.
pub const MAX_GAP: Duration = Duration::from_secs(15);

/// One interval of one app.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The interval's end, in milliseconds since the Unix epoch.
    pub t: u64,
    /// Its length, in seconds.
    pub seconds: f64,
    /// Requests answered in it.
    pub requests: u64,
    /// Of those, the ones answered with a `5xx` status.
    pub errors: u64,
    /// Requests per second.
    pub rate: f64,
    /// Median latency in milliseconds (`null` without requests).
    pub p50_ms: Option<f64>,
    /// 99th percentile latency in milliseconds (`null` without requests).
    pub p99_ms: Option<f64>,
}

/// The history of every app. Behind a mutex held only to compute a few
/// hundred numbers, never across an `.await`.
#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The last reading: when, and every app's counts then.
    last: Option<(Instant, HashMap<String, TallySnapshot>)>,
    points: HashMap<String, VecDeque<Point>>,
}

impl History {
    /// Takes a reading of `tallies` at `now` (`wall` is the same moment on
    /// the clock) unless the last one is younger than [`SAMPLE_EVERY`];
    /// makes one point per app from the previous reading. Returns whether
    /// it took one.
    pub fn sample(&self, now: Instant, wall: SystemTime, tallies: HashMap<String, TallySnapshot>) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = match &inner.last {
            Some((at, _)) if now.saturating_duration_since(*at) < SAMPLE_EVERY => return false,
            Some((at, _)) => Some(now.saturating_duration_since(*at)),
            None => None,
        };
        if let Some(elapsed) = elapsed.filter(|e| *e <= MAX_GAP) {
            let t = wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let before = inner.last.take().map(|(_, tallies)| tallies).unwrap_or_default();
            for (app, now) in &tallies {
                let point = point(t, elapsed, &before.get(app).copied().unwrap_or_default(), now);
                let points = inner.points.entry(app.clone()).or_default();
                if points.len() == KEEP {
                    points.pop_front();
                }
                points.push_back(point);
            }
        }
        inner.last = Some((now, tallies));
        true
    }

    /// The points of `app`, oldest first.
    pub fn points(&self, app: &str) -> Vec<Point> {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner
            .points
            .get(app)
            .map(|p| p.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The point of the interval of `elapsed` ending at `t`, between the
/// counts `before` and `after`.
fn point(t: u64, elapsed: Duration, before: &TallySnapshot, after: &TallySnapshot) -> Point {
    let buckets: [u64; TALLY_BUCKETS] = std::array::from_fn(|i| after.buckets[i].saturating_sub(before.buckets[i]));
    let requests: u64 = buckets.iter().sum();
    let seconds = elapsed.as_secs_f64();
    Point {
        t,
        seconds,
        requests,
        errors: after.errors.saturating_sub(before.errors),
        #[allow(clippy::cast_precision_loss)] // a request count far below 2^52
        rate: if seconds > 0.0 { requests as f64 / seconds } else { 0.0 },
        p50_ms: quantile(&buckets, 0.5).map(|s| s * 1000.0),
        p99_ms: quantile(&buckets, 0.99).map(|s| s * 1000.0),
    }
}

/// The `q` quantile (0 to 1) in seconds of the latencies counted in
/// `buckets`, interpolated linearly inside its bucket (as Prometheus'
/// `histogram_quantile` does); the last bound for the open bucket above
/// it. `None` for no requests.
#[allow(clippy::cast_precision_loss)] // request counts far below 2^52
pub fn quantile(buckets: &[u64; TALLY_BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &count) in buckets.iter().enumerate() {
        if count > 0 && (below + count) as f64 >= rank {
            let Some(&upper) = TALLY_BOUNDS.get(i) else {
                return TALLY_BOUNDS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { TALLY_BOUNDS[i - 1] };
            let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * within);
        }
        below += count;
    }
    TALLY_BOUNDS.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(buckets: &[(usize, u64)], errors: u64) -> TallySnapshot {
        let mut snapshot = TallySnapshot {
            errors,
            ..TallySnapshot::default()
        };
        for &(i, n) in buckets {
            snapshot.buckets[i] = n;
        }
        snapshot
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let mut buckets = [0; TALLY_BUCKETS];
        assert_eq!(quantile(&buckets, 0.5), None);
        buckets[0] = 100; // all in [0, 0.1 ms]
        assert!(close(quantile(&buckets, 0.5).unwrap(), 0.00005));
        buckets[0] = 50;
        buckets[3] = 50; // (0.4 ms, 0.8 ms]
        assert!(
            close(quantile(&buckets, 0.5).unwrap(), 0.0001),
            "the median is the top of the first half"
        );
        assert!(close(quantile(&buckets, 0.99).unwrap(), 0.0004 + 0.0004 * 0.98));
        buckets[TALLY_BUCKETS - 1] = 1000; // slower than the last bound
        assert!(close(quantile(&buckets, 0.99).unwrap(), TALLY_BOUNDS[15]));
    }

    #[test]
    fn points_are_differences_between_readings_at_most_one_per_interval() {
        let history = History::default();
        let start = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let first = HashMap::from([("a".to_owned(), snapshot(&[(0, 10)], 1))]);
        assert!(history.sample(start, wall, first.clone()));
        assert!(history.points("a").is_empty(), "one reading makes no point");
        assert!(!history.sample(start + Duration::from_secs(1), wall, first));
        let second = HashMap::from([("a".to_owned(), snapshot(&[(0, 20), (3, 10)], 3))]);
        let later = wall + Duration::from_secs(5);
        assert!(history.sample(start + SAMPLE_EVERY, later, second));
        let points = history.points("a");
        assert_eq!(points.len(), 1);
        let p = &points[0];
        assert_eq!((p.t, p.requests, p.errors), (1_005_000, 20, 2));
        assert!(close(p.rate, 4.0));
        assert!(close(p.p50_ms.unwrap(), 0.1));
        assert!(history.points("b").is_empty());
    }

    #[test]
    fn a_gap_makes_no_point_and_the_ring_keeps_ten_minutes() {
        let history = History::default();
        let start = Instant::now();
        let wall = SystemTime::now();
        let reading = |n| HashMap::from([("a".to_owned(), snapshot(&[(0, n)], 0))]);
        history.sample(start, wall, reading(0));
        history.sample(start + MAX_GAP + SAMPLE_EVERY, wall, reading(5));
        assert!(history.points("a").is_empty(), "nobody watched for longer than MAX_GAP");
        let mut at = start + MAX_GAP + SAMPLE_EVERY;
        for i in 0..(KEEP as u64 + 10) {
            at += SAMPLE_EVERY;
            history.sample(at, wall, reading(10 + i));
        }
        let points = history.points("a");
        assert_eq!(points.len(), KEEP);
        assert!(points.iter().all(|p| p.requests == 1));
    }
}
