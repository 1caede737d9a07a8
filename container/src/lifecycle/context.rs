//! The context-path table: which app a request path belongs to. Swapped
//! atomically as a whole when apps come and go; each app's slot swaps its
//! instance on its own (reload) without touching the table.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use http::HeaderValue;

use super::instance::Share;
use super::{AppLimits, Instance};
use crate::deploy::bundle::BundleDir;
use crate::metrics::{AppMetrics, Metrics};
use crate::striped::{StripedArc, StripedU64, Stripes};
use crate::watchdog::AppWatch;

/// An app's place in routing. Its instance is absent while the app is not
/// running (requests then get `503`).
pub struct AppSlot {
    /// The app name.
    pub name: Arc<str>,
    /// The mount prefix: `/name`, or empty for the root app.
    pub prefix: Arc<str>,
    running: ArcSwapOption<Running>,
    /// Its quotas, shared by every instance.
    pub limits: StripedArc<AppLimits>,
    /// Its stall record, shared by every instance.
    pub watch: &'static AppWatch,
    /// Requests routed to it: counted in stripes, as every worker counts them.
    served: StripedU64,
    metrics: OnceLock<AppMetrics>,
    /// Its static files, served under `<prefix>/static/`, if it has any.
    static_root: ArcSwapOption<StaticRoot>,
}

/// A directory of static files, and how they are served. Built once (at
/// start for a `[static]` mount, at deploy for an app's `static_dir`, at
/// load for a bundle's `static/`); cloning the `Arc` shares it.
#[derive(Debug)]
pub struct StaticRoot {
    /// The directory, canonical: every file served resolves inside it.
    pub dir: PathBuf,
    /// The `Cache-Control` of its files; `None` for no header.
    pub cache_control: Option<HeaderValue>,
    /// The unpacked bundle `dir` is in, kept while anyone serves from it.
    bundle: Option<Arc<BundleDir>>,
}

/// Why a static directory cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve static files from {dir}: {source}")]
pub struct StaticRootError {
    dir: PathBuf,
    #[source]
    source: std::io::Error,
}

impl StaticRoot {
    /// The directory `dir`, whose files get `cache_control` (empty: none).
    ///
    /// # Errors
    /// If `dir` is not a directory that can be resolved, or
    /// `cache_control` is not a valid header value.
    pub fn open(dir: &Path, cache_control: &str) -> Result<Self, StaticRootError> {
        let error = |source| StaticRootError {
            dir: dir.to_path_buf(),
            source,
        };
        let canonical = std::fs::canonicalize(dir).map_err(error)?;
        if !canonical.is_dir() {
            return Err(error(std::io::Error::other("not a directory")));
        }
        let cache_control = match cache_control {
            "" => None,
            value => Some(HeaderValue::from_str(value).map_err(|e| error(std::io::Error::other(e)))?),
        };
        Ok(StaticRoot {
            dir: canonical,
            cache_control,
            bundle: None,
        })
    }

    /// The same root, keeping the bundle directory `bundle` (which holds
    /// it) from being removed while a request serves from it.
    #[must_use]
    pub fn keeping(mut self, bundle: Arc<BundleDir>) -> Self {
        self.bundle = Some(bundle);
        self
    }
}

impl AppSlot {
    /// An empty slot for app `name` mounted at `prefix`, with `limits`.
    pub fn new(name: Arc<str>, prefix: Arc<str>, limits: AppLimits) -> Self {
        AppSlot {
            watch: AppWatch::of(&name),
            name,
            prefix,
            running: ArcSwapOption::empty(),
            limits: StripedArc::new(Arc::new(limits)),
            served: StripedU64::default(),
            metrics: OnceLock::new(),
            static_root: ArcSwapOption::empty(),
        }
    }

    /// Its static files, if it has any.
    pub fn static_root(&self) -> Option<Arc<StaticRoot>> {
        self.static_root.load_full()
    }

    /// Gives the app its configured static files (`static_dir`; `None`:
    /// none). They win over a bundle's `static/`, which belongs to the
    /// instance instead ([`Instance::static_root`]).
    pub fn set_static_root(&self, root: Option<Arc<StaticRoot>>) {
        self.static_root.store(root);
    }

    /// This app's metric handles (created on first use).
    pub fn metrics(&self, metrics: &Metrics) -> &AppMetrics {
        self.metrics.get_or_init(|| metrics.app(&self.name))
    }

    /// Counts one request routed to this app.
    pub fn count_request(&self) {
        self.served.add(1);
    }

    /// Requests routed to this app so far (across reloads).
    pub fn requests_served(&self) -> u64 {
        self.served.get()
    }

    /// Requests running in the current instance now.
    pub fn in_flight(&self) -> usize {
        self.running.load().as_ref().map_or(0, |r| r.instance.in_flight())
    }

    /// The running instance, if any.
    pub fn instance(&self) -> Option<Arc<Instance>> {
        self.running.load().as_ref().map(|r| Arc::clone(&r.instance))
    }

    /// The calling thread's share of the running instance, if any: what a
    /// request holds it through.
    pub fn share(&self) -> Option<Arc<Share>> {
        self.running.load().as_ref().map(|r| Arc::clone(r.shares.local()))
    }

    /// Puts `instance` in (or takes the current one out, with `None`) and
    /// returns the previous one. New requests see the change at once.
    pub fn swap(&self, instance: Option<Arc<Instance>>) -> Option<Arc<Instance>> {
        let running = instance.map(|instance| {
            Arc::new(Running {
                shares: Share::all(&instance),
                instance,
            })
        });
        let previous = self.running.swap(running)?;
        // Its shares go with it (once no reader holds it any more): the
        // requests that hold them are the last to hold the instance.
        Some(Arc::clone(&previous.instance))
    }
}

/// The instance a slot runs, and its shares.
struct Running {
    instance: Arc<Instance>,
    shares: Stripes<Arc<Share>>,
}

/// Where a path leads.
#[derive(Clone, Copy)]
pub enum Resolved<'a> {
    /// To `slot`; the app's own path starts at byte `path_start`.
    App {
        slot: &'a StripedArc<AppSlot>,
        path_start: usize,
    },
    /// To an app's bare prefix (`/hello`): redirect to `/hello/`.
    AddSlash,
    /// Nowhere.
    NotFound,
}

impl Resolved<'_> {
    /// The length of the context path that `path` matched (`0` for the
    /// root app), if it matched one.
    pub fn matched_len(&self, path: &str) -> Option<usize> {
        match self {
            Resolved::App { path_start, .. } => Some(*path_start),
            Resolved::AddSlash => Some(path.len()),
            Resolved::NotFound => None,
        }
    }
}

/// Every mounted app, by first path segment, plus the root app.
///
/// The segments are kept sorted and found by binary search: a few string
/// comparisons, cheaper than hashing the segment (SipHash) for the tables
/// real servers have, and no worse for thousands of apps.
///
/// Each slot is held in stripes ([`StripedArc`]): a request references its
/// app's slot on its own thread's stripe.
#[derive(Default)]
pub struct ContextTable {
    by_segment: Vec<(Box<str>, StripedArc<AppSlot>)>,
    root: Option<StripedArc<AppSlot>>,
}

impl ContextTable {
    /// Builds a table from slots; the caller has checked that prefixes are unique.
    pub fn new(slots: impl IntoIterator<Item = Arc<AppSlot>>) -> Self {
        let mut table = ContextTable::default();
        for slot in slots {
            match slot.prefix.strip_prefix('/') {
                Some(segment) => table.by_segment.push((segment.into(), StripedArc::new(slot))),
                None => table.root = Some(StripedArc::new(slot)),
            }
        }
        table.by_segment.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        table
    }

    /// Finds the app for `path`: the one mounted at its first segment, else
    /// the root app.
    pub fn resolve(&self, path: &str) -> Resolved<'_> {
        let rest = path.strip_prefix('/').unwrap_or(path);
        // A byte search: `find('/')` goes through a `memchr` searcher
        // whose setup costs more than the few bytes of a first segment.
        let (segment, has_slash) = match rest.bytes().position(|b| b == b'/') {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        let found = self.by_segment.binary_search_by(|(s, _)| (**s).cmp(segment));
        if let Ok(i) = found {
            let slot = &self.by_segment[i].1;
            return if has_slash {
                Resolved::App {
                    slot,
                    path_start: segment.len() + 1,
                }
            } else {
                Resolved::AddSlash
            };
        }
        match &self.root {
            Some(slot) => Resolved::App { slot, path_start: 0 },
            None => Resolved::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, prefix: &str) -> Arc<AppSlot> {
        let limits = AppLimits::new(&crate::config::AppConfig::default());
        Arc::new(AppSlot::new(name.into(), prefix.into(), limits))
    }

    fn app(resolved: Resolved<'_>) -> Option<(&str, usize)> {
        match resolved {
            Resolved::App { slot, path_start } => Some((&slot.name, path_start)),
            _ => None,
        }
    }

    #[test]
    fn each_path_finds_the_app_of_its_first_segment() {
        let names = ["shop", "a", "bench", "ab", "hello", "zeta", "b"];
        let table = ContextTable::new(names.iter().map(|n| slot(n, &format!("/{n}"))));
        for name in names {
            let path = format!("/{name}/x");
            assert_eq!(app(table.resolve(&path)), Some((name, name.len() + 1)), "{path}");
            assert!(matches!(table.resolve(&format!("/{name}")), Resolved::AddSlash));
        }
        assert!(matches!(table.resolve("/abc/x"), Resolved::NotFound));
        assert!(matches!(table.resolve("/"), Resolved::NotFound));

        let with_root = ContextTable::new([slot("shop", "/shop"), slot("site", "")]);
        assert_eq!(app(with_root.resolve("/abc/x")), Some(("site", 0)));
        assert_eq!(app(with_root.resolve("/shop/")), Some(("shop", 5)));
    }
}
