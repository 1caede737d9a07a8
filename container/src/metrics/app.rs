//! What one app's requests are counted with: the handles cached in its
//! slot, and the figures read from it at scrape time.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::family::Family;

use super::RequestCounter;
use super::labels::RequestLabels;
use super::tally::Tally;

/// Metric handles of one app, cached in its routing slot so that the
/// common case (status 200) costs three relaxed atomic adds, each on a
/// cache line of the calling thread's own ([`crate::striped::Stripes`]), no lock
/// and no lookup.
pub struct AppMetrics {
    pub(super) app: String,
    pub(super) ok: RequestCounter,
    pub(super) requests: Family<RequestLabels, RequestCounter>,
    pub(super) tally: Arc<Tally>,
}

impl AppMetrics {
    /// Counts one request of this app.
    pub fn observe(&self, status: u16, latency: Duration) {
        if status == 200 {
            self.ok.inc();
        } else {
            let labels = RequestLabels {
                app: self.app.clone(),
                status,
            };
            self.requests.get_or_create(&labels).inc();
        }
        self.tally.count(status, latency);
    }
}

/// One app's figures, read at scrape time.
pub struct AppFigures<'a> {
    /// App name.
    pub app: &'a str,
    /// Its state name.
    pub state: &'a str,
    /// Requests running now.
    pub in_flight: usize,
    /// Successful reloads.
    pub reloads: u64,
    /// Threads stalled in its code now (see [`crate::watchdog`]).
    pub stalled_threads: usize,
    /// Stalls since the container started.
    pub stalls: u64,
}
