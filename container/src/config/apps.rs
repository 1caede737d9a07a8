//! `[apps.NAME]` and `[static."/PREFIX"]`: per-app settings, and
//! directories served with no module.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `Cache-Control` of static files unless configured: caches keep
/// them but ask again (a `304` when unchanged) before each use.
pub const DEFAULT_STATIC_CACHE_CONTROL: &str = "no-cache";

/// `[static."/PREFIX"]`: a directory served under `/PREFIX` with no module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// The directory; relative to the configuration file's directory.
    pub dir: PathBuf,
    /// The `Cache-Control` header of its files; empty for none.
    #[serde(default = "default_cache_control")]
    pub cache_control: String,
}

pub(super) fn default_cache_control() -> String {
    DEFAULT_STATIC_CACHE_CONTROL.to_owned()
}

/// `[apps.NAME]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Where the app is mounted: `/NAME` unless set; `/` for the root app.
    pub context_path: Option<String>,
    /// The datasources the app may use; the first is its default.
    pub datasources: Vec<String>,
    /// Requests of this app running at once; more get `503` with
    /// `Retry-After` at once.
    pub max_requests: usize,
    /// Blocking handler calls of this app running at once (the container's
    /// blocking pool has 512 threads for every app); more get `503` with
    /// `Retry-After` at once.
    pub max_blocking: usize,
    /// Tasks the app has spawned through the host, alive at once; a spawn
    /// past it is refused (the task is dropped) and logged.
    pub max_tasks: usize,
    /// Largest response body; a larger one is a `500` and a log line.
    /// (A streamed body is not held in memory, and has no limit.)
    pub max_response_bytes: usize,
    /// `0` (the default): the app's code runs on the container's worker
    /// threads, shared by every app. `N`: on `N` threads of its own, so
    /// that code of this app that never yields holds only those threads
    /// (and its requests still time out with `504`). Each request then
    /// crosses between threads twice, which costs about a sixth of the
    /// throughput of a trivial handler.
    pub worker_threads: usize,
    /// Origins whose pages may open the app's WebSockets, e.g.
    /// `["https://chat.example.com"]`; `["*"]` for any. Empty (the
    /// default): the page's origin must be the host it connects to. A
    /// handshake without an `Origin` header (not from a browser) is
    /// always allowed. Others get `403`.
    pub websocket_origins: Vec<String>,
    /// The app's static files, served by the container under
    /// `<context path>/static/`; relative to the configuration file's
    /// directory. Unset: none.
    pub static_dir: Option<PathBuf>,
    /// The `Cache-Control` header of its static files; empty for none.
    pub static_cache_control: String,
    /// The app's session idle timeout; unset: `sessions.idle_timeout`.
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Option<Duration>,
    /// The app's session lifetime; unset: `sessions.max_lifetime`.
    #[serde(with = "humantime_serde")]
    pub session_max_lifetime: Option<Duration>,
    /// Mark the session cookie `Secure` on every response, not only on
    /// requests that came over TLS (directly, or through a trusted proxy).
    pub session_cookie_secure: bool,
    /// `[apps.NAME.config]`: handed to the app's `init` as it is.
    pub config: serde_json::Map<String, serde_json::Value>,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            context_path: None,
            max_requests: 10_000,
            max_blocking: 64,
            max_tasks: 10_000,
            max_response_bytes: 64 * 1024 * 1024,
            worker_threads: 0,
            websocket_origins: Vec::new(),
            datasources: vec!["default".to_owned()],
            static_dir: None,
            static_cache_control: default_cache_control(),
            session_idle_timeout: None,
            session_max_lifetime: None,
            session_cookie_secure: false,
            config: serde_json::Map::new(),
        }
    }
}
