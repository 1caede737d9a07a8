//! An app's quotas: the most requests and blocking calls it may have
//! running at once, from `[apps.NAME]`. Counted per app, not per instance,
//! so a reload does not reset them while the old instance's calls still
//! run; a permit is given back when its request (or blocking thread) ends.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::AppConfig;
use crate::striped::{StripeRef, StripedArc};

/// What an app may have running at once, and what it has.
#[derive(Debug)]
pub struct AppLimits {
    max_requests: usize,
    requests: AtomicUsize,
    max_blocking: usize,
    blocking: AtomicUsize,
    /// `websocket_origins`: empty for same-origin only.
    websocket_origins: Vec<String>,
}

/// One unit of a quota; given back on drop. It holds the limits through
/// its thread's stripe (see [`StripedArc`]): the quota's count is the one
/// line every request of the app writes.
#[derive(Debug)]
pub struct Permit {
    limits: StripeRef<AppLimits>,
    blocking: bool,
}

impl AppLimits {
    /// The quotas of `[apps.NAME]`.
    pub fn new(config: &AppConfig) -> Self {
        AppLimits {
            max_requests: config.max_requests,
            requests: AtomicUsize::new(0),
            max_blocking: config.max_blocking,
            blocking: AtomicUsize::new(0),
            websocket_origins: config.websocket_origins.clone(),
        }
    }

    /// Whether a WebSocket handshake with `origin` (its `Origin` header, if
    /// any) to `host` (its `Host`) may open: no `Origin` (not a browser),
    /// an origin the app lists (or `*`), or, when it lists none, the
    /// origin of the host itself.
    pub fn allows_origin(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        if self.websocket_origins.is_empty() {
            let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            return host.is_some_and(|host| authority.eq_ignore_ascii_case(host));
        }
        self.websocket_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    }

    /// Blocking calls running now (including timed-out ones whose thread
    /// has not returned).
    pub fn blocking(&self) -> usize {
        self.blocking.load(Ordering::Relaxed)
    }
}

/// Takes one unit if fewer than `max` are taken: one atomic add on the
/// request path (a compare-and-swap loop needs two operations even when
/// uncontended), undone when it went past the limit.
fn take(counter: &AtomicUsize, max: usize) -> bool {
    if counter.fetch_add(1, Ordering::AcqRel) < max {
        return true;
    }
    counter.fetch_sub(1, Ordering::AcqRel);
    false
}

impl Permit {
    /// A request permit, or `None` if the app has its most requests running.
    pub fn request(limits: &StripedArc<AppLimits>) -> Option<Permit> {
        take(&limits.requests, limits.max_requests).then(|| Permit {
            limits: limits.local(),
            blocking: false,
        })
    }

    /// A blocking-call permit, or `None` if the app has its most blocking
    /// calls running.
    pub fn blocking(limits: &StripedArc<AppLimits>) -> Option<Permit> {
        take(&limits.blocking, limits.max_blocking).then(|| Permit {
            limits: limits.local(),
            blocking: true,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let counter = if self.blocking {
            &self.limits.blocking
        } else {
            &self.limits.requests
        };
        counter.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn permits_run_out_and_come_back() {
        let config = AppConfig {
            max_requests: 2,
            max_blocking: 1,
            ..AppConfig::default()
        };
        let limits = StripedArc::new(Arc::new(AppLimits::new(&config)));
        let (a, b) = (Permit::request(&limits).unwrap(), Permit::request(&limits).unwrap());
        assert!(Permit::request(&limits).is_none());
        let blocking = Permit::blocking(&limits).unwrap();
        assert!(Permit::blocking(&limits).is_none(), "separate quotas");
        assert_eq!(limits.blocking(), 1);
        drop(a);
        assert!(Permit::request(&limits).is_some());
        drop((b, blocking));
        assert_eq!(limits.blocking(), 0);
        assert!(Permit::blocking(&limits).is_some());
    }

    fn origins(origins: &[&str]) -> AppLimits {
        let config = AppConfig {
            websocket_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            ..AppConfig::default()
        };
        AppLimits::new(&config)
    }

    #[test]
    fn websocket_origins_default_to_the_host_itself() {
        let same = origins(&[]);
        assert!(same.allows_origin(None, Some("a.example")), "not a browser");
        assert!(same.allows_origin(Some("https://a.example"), Some("a.example")));
        assert!(same.allows_origin(Some("http://A.example:8080"), Some("a.example:8080")));
        assert!(!same.allows_origin(Some("https://evil.example"), Some("a.example")));
        assert!(!same.allows_origin(Some("https://a.example"), None));
        assert!(!same.allows_origin(Some("null"), Some("a.example")));
    }

    #[test]
    fn listed_origins_and_the_wildcard() {
        let listed = origins(&["https://chat.example"]);
        assert!(listed.allows_origin(Some("https://chat.example"), Some("api.example")));
        assert!(
            !listed.allows_origin(Some("https://api.example"), Some("api.example")),
            "the list replaces same-origin"
        );
        assert!(origins(&["*"]).allows_origin(Some("https://anything"), None));
    }
}
