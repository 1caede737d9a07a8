//! Prometheus metrics: requests by app and status, latency, in-flight
//! requests, reloads, loaded images and their memory; and a plain tally per
//! app ([`Tally`]) that the console's history samples.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::striped::StripedU64;

mod app;
mod labels;
mod tally;

pub use app::{AppFigures, AppMetrics};
pub use tally::{LatencyHistogram, TALLY_BOUNDS, TALLY_BUCKETS, Tally, TallySnapshot};

/// A counter of requests: counted in stripes ([`StripedU64`]), as the
/// request path counts every one.
pub type RequestCounter = Counter<u64, StripedU64>;

use labels::{AppLabels, HubLabels, PoolLabels, RequestLabels, StateLabels, TriggerLabels};

/// The container's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, RequestCounter>,
    latency: Family<AppLabels, LatencyHistogram>,
    in_flight: Family<AppLabels, Gauge>,
    reloads: Family<AppLabels, Gauge>,
    stalled_threads: Family<AppLabels, Gauge>,
    stalls: Family<AppLabels, Gauge>,
    states: Family<StateLabels, Gauge>,
    pools: Family<PoolLabels, Gauge>,
    images: Gauge,
    image_bytes: Gauge,
    resident_bytes: Gauge,
    deploy_scans: Family<TriggerLabels, Counter>,
    access_log_dropped: Counter,
    websockets: Gauge,
    hub: Family<HubLabels, Gauge>,
    tallies: Mutex<HashMap<String, Arc<Tally>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("crabcat"),
            requests: Family::default(),
            latency: Family::default(),
            in_flight: Family::default(),
            reloads: Family::default(),
            stalled_threads: Family::default(),
            stalls: Family::default(),
            states: Family::default(),
            pools: Family::default(),
            images: Gauge::default(),
            image_bytes: Gauge::default(),
            resident_bytes: Gauge::default(),
            deploy_scans: Family::default(),
            access_log_dropped: Counter::default(),
            websockets: Gauge::default(),
            hub: Family::default(),
            tallies: Mutex::default(),
        };
        let r = &mut metrics.registry;
        r.register("requests", "HTTP requests by app and status", metrics.requests.clone());
        r.register(
            "request_duration_seconds",
            "Request latency by app",
            metrics.latency.clone(),
        );
        r.register(
            "requests_in_flight",
            "Requests running now, by app",
            metrics.in_flight.clone(),
        );
        r.register("app_reloads", "Successful reloads, by app", metrics.reloads.clone());
        r.register(
            "app_stalled_threads",
            "Worker threads running the app's code without yielding for longer than server.stall_timeout, now",
            metrics.stalled_threads.clone(),
        );
        r.register(
            "app_stalls",
            "Times the app's code ran without yielding for longer than server.stall_timeout",
            metrics.stalls.clone(),
        );
        r.register("app_state", "1 for the state each app is in", metrics.states.clone());
        r.register(
            "pool_connections",
            "Database connections by datasource, idle or in use",
            metrics.pools.clone(),
        );
        r.register(
            "loaded_images",
            "Module images loaded and kept (never unloaded)",
            metrics.images.clone(),
        );
        r.register(
            "loaded_image_bytes",
            "Address space mapped by loaded module images",
            metrics.image_bytes.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident set size of the container",
            metrics.resident_bytes.clone(),
        );
        r.register(
            "deploy_scans",
            "Scans of the deploy directory, by trigger: a change event, the periodic interval, or a file settling",
            metrics.deploy_scans.clone(),
        );
        r.register(
            "access_log_dropped_lines",
            "Access log lines dropped because the writer fell behind",
            metrics.access_log_dropped.clone(),
        );
        r.register(
            "websocket_connections",
            "WebSocket connections open now (accepted, not yet closed and released)",
            metrics.websockets.clone(),
        );
        r.register(
            "hub",
            "The pub/sub hub: messages published, delivered to subscribers, dropped \
             (a subscriber too slow, disconnected with 1008), subscriptions now, and in \
             cluster mode messages not relayed to the other nodes (relay_dropped: the bus was behind)",
            metrics.hub.clone(),
        );
        metrics
    }
}

impl Metrics {
    /// The handles of app `app`.
    pub fn app(&self, app: &str) -> AppMetrics {
        let ok = RequestLabels {
            app: app.to_owned(),
            status: 200,
        };
        // The app's tally is its latency histogram: one count for both.
        let histogram = self.latency.get_or_create(&AppLabels { app: app.to_owned() }).0.clone();
        let tally = Arc::clone(
            self.tallies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(app.to_owned())
                .or_insert(histogram),
        );
        AppMetrics {
            app: app.to_owned(),
            ok: self.requests.get_or_create(&ok).clone(),
            requests: self.requests.clone(),
            tally,
        }
    }

    /// The tally of every app (and static mount) that has counted a
    /// request, by name, read now.
    pub fn tallies(&self) -> HashMap<String, TallySnapshot> {
        let tallies = self.tallies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tallies
            .iter()
            .map(|(app, tally)| (app.clone(), tally.snapshot()))
            .collect()
    }

    /// The counters the deploy-directory watcher counts its scans into.
    pub fn deploy_scans(&self) -> crate::deploy::ScanCounters {
        let counter = |trigger| self.deploy_scans.get_or_create(&TriggerLabels { trigger }).clone();
        crate::deploy::ScanCounters {
            event: counter("event"),
            interval: counter("interval"),
            settle: counter("settle"),
        }
    }

    /// The counter of access log lines dropped because the writer fell behind.
    pub fn access_log_dropped(&self) -> Counter {
        self.access_log_dropped.clone()
    }

    /// Counts one request. `app` is `-` when no app took it.
    pub fn observe_request(&self, app: &str, status: u16, latency: Duration) {
        let labels = RequestLabels {
            app: app.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        let labels = AppLabels { app: labels.app };
        self.latency.get_or_create(&labels).0.count(status, latency);
    }

    /// Renders the Prometheus text format, after setting the gauges from
    /// the apps as they are now.
    pub fn render<'a>(
        &self,
        apps: impl IntoIterator<Item = AppFigures<'a>>,
        pools: impl IntoIterator<Item = (&'a str, u32, usize)>,
    ) -> String {
        self.pools.clear();
        for (datasource, size, idle) in pools {
            let used = u64::from(size).saturating_sub(idle as u64);
            for (state, n) in [("idle", idle as u64), ("used", used)] {
                let labels = PoolLabels {
                    datasource: datasource.to_owned(),
                    state,
                };
                self.pools.get_or_create(&labels).set(saturating_i64(n));
            }
        }
        self.in_flight.clear();
        self.reloads.clear();
        self.stalled_threads.clear();
        self.stalls.clear();
        self.states.clear();
        for app in apps {
            let labels = AppLabels {
                app: app.app.to_owned(),
            };
            self.in_flight
                .get_or_create(&labels)
                .set(saturating_i64(app.in_flight as u64));
            self.reloads.get_or_create(&labels).set(saturating_i64(app.reloads));
            self.stalled_threads
                .get_or_create(&labels)
                .set(saturating_i64(app.stalled_threads as u64));
            self.stalls.get_or_create(&labels).set(saturating_i64(app.stalls));
            let labels = StateLabels {
                app: labels.app,
                state: app.state.to_owned(),
            };
            self.states.get_or_create(&labels).set(1);
        }
        let hub = crate::hub::Hub::global().stats();
        for (what, n) in [
            ("published", hub.published),
            ("delivered", hub.delivered),
            ("dropped", hub.dropped),
            ("subscriptions", hub.subscriptions),
            ("relay_dropped", hub.relay_dropped),
        ] {
            self.hub.get_or_create(&HubLabels { what }).set(saturating_i64(n));
        }
        self.websockets.set(saturating_i64(crate::abi::open_sockets()));
        let (images, bytes) = crate::abi::loaded_images();
        self.images.set(saturating_i64(images as u64));
        self.image_bytes.set(saturating_i64(bytes));
        self.resident_bytes.set(saturating_i64(resident_bytes().unwrap_or(0)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The resident set size of this process (Linux), in bytes.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_of_an_app_shares_its_tally() {
        let metrics = Metrics::default();
        metrics.app("a").observe(200, Duration::from_millis(1));
        metrics.app("a").observe(500, Duration::from_millis(1));
        let tallies = metrics.tallies();
        assert_eq!(tallies["a"].requests(), 2);
        assert_eq!(tallies["a"].errors, 1);
    }

    #[test]
    fn the_latency_histogram_is_the_tally_in_prometheus_form() {
        let metrics = Metrics::default();
        let a = metrics.app("a");
        a.observe(200, Duration::from_micros(50));
        a.observe(200, Duration::from_micros(150));
        a.observe(404, Duration::from_secs(10));
        metrics.observe_request("-", 404, Duration::from_micros(300));
        let text = metrics.render([], []);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(line("crabcat_request_duration_seconds_count{app=\"a\"}"), "3");
        assert_eq!(line("crabcat_request_duration_seconds_sum{app=\"a\"}"), "10.0002");
        // Cumulative, as Prometheus wants them.
        assert_eq!(
            line("crabcat_request_duration_seconds_bucket{le=\"0.0001\",app=\"a\"}"),
            "1"
        );
        assert_eq!(
            line("crabcat_request_duration_seconds_bucket{le=\"0.0002\",app=\"a\"}"),
            "2"
        );
        assert_eq!(
            line("crabcat_request_duration_seconds_bucket{le=\"3.2768\",app=\"a\"}"),
            "2"
        );
        assert_eq!(
            line("crabcat_request_duration_seconds_bucket{le=\"+Inf\",app=\"a\"}"),
            "3"
        );
        assert_eq!(line("crabcat_request_duration_seconds_count{app=\"-\"}"), "1");
    }
}
