//! Configuration: built-in defaults < `crabcat.toml` < `CRABCAT__...`
//! environment variables < command-line flags. One typed section per
//! subsystem; unknown keys are errors. Validated before any port is bound.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read or parsed.
    #[error("invalid configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is out of range.
    #[error("invalid configuration: {key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The HTTP listener and its limits.
    pub server: ServerConfig,
    /// Where modules are deployed from.
    pub deploy: DeployConfig,
    /// Logging.
    pub log: LogConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// Named datasources. `default` (an embedded SQLite file) is added
    /// when not configured.
    pub datasources: BTreeMap<String, DatasourceConfig>,
    /// Per-app settings, by app name.
    pub apps: BTreeMap<String, AppConfig>,
    /// `[static."/PREFIX"]`: directories served under a path prefix with
    /// no module, by prefix.
    #[serde(rename = "static")]
    pub statics: BTreeMap<String, StaticConfig>,
    /// `[sessions]`: HTTP sessions, kept by the container for its apps.
    pub sessions: SessionsConfig,
    /// `[cluster]`: several containers sharing deployments through PostgreSQL.
    pub cluster: ClusterConfig,
}

/// `[cluster]`: this container is one node of several that share
/// deployments through a PostgreSQL datasource (`LISTEN`/`NOTIFY`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The PostgreSQL datasource the nodes share; empty (the default):
    /// not a cluster.
    pub datasource: String,
    /// This node's name in the cluster; unset: the host name and the HTTP
    /// port (`web-1:8080`).
    pub node: Option<String>,
}

/// `[sessions]`: the container keeps each app's HTTP sessions in a
/// datasource, so they survive reloads and restarts (and, on a shared
/// PostgreSQL datasource, are seen by every container).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// The datasource sessions are stored in (`default`: the embedded
    /// SQLite file unless configured otherwise); empty turns sessions off.
    pub datasource: String,
    /// A session unused this long expires (`[apps.NAME]
    /// session_idle_timeout` overrides it per app).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session expires this long after it was created, however much it
    /// is used (`[apps.NAME] session_max_lifetime` overrides it per app).
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// Largest session (names and serialised values), per app; a write
    /// past it is refused with an error the app sees.
    pub max_bytes: usize,
    /// The session cookie's name.
    pub cookie_name: String,
    /// How often expired sessions are deleted.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            datasource: "default".to_owned(),
            idle_timeout: Duration::from_secs(30 * 60),
            max_lifetime: Duration::from_secs(12 * 3600),
            max_bytes: 64 * 1024,
            cookie_name: "CRABCAT_SESSION".to_owned(),
            sweep_interval: Duration::from_secs(5 * 60),
        }
    }
}

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

fn default_cache_control() -> String {
    DEFAULT_STATIC_CACHE_CONTROL.to_owned()
}

/// `[datasources.NAME]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasourceConfig {
    /// `sqlite://path/file.db`, `postgres://user:pass@host:port/db` or
    /// `mysql://user:pass@host:port/db` (MySQL or MariaDB; `mariadb://` too).
    pub url: String,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// Most connections at once; further requests wait up to `acquire_timeout`.
    pub max_connections: u32,
    /// How long a request waits for a connection before it gets a 503.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Connections are replaced after this long.
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// Statements running longer are cancelled (PostgreSQL, MariaDB; on
    /// MySQL only `SELECT`s). SQLite has none.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Option<Duration>,
}

impl Default for DatasourceConfig {
    fn default() -> Self {
        DatasourceConfig {
            url: "sqlite://data/crabcat.db".into(),
            min_connections: 0,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            statement_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP listener.
    pub listen: SocketAddr,
    /// A request that takes longer gets `504 Gateway Timeout`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Module code that runs this long without yielding (a loop or a
    /// blocking call in an async handler) is reported, and its app gets
    /// `503` for new requests until it returns; `0s` turns the watchdog off.
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// Largest request body accepted; larger ones get `413`.
    pub max_body_bytes: usize,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Connections served at once; past it, new ones wait in the kernel's
    /// backlog until one closes. Keep it below the process's file limit.
    pub max_connections: usize,
    /// Requests served on one HTTP/1 keep-alive connection: the last one's
    /// response says `Connection: close` (nginx's `keepalive_requests`),
    /// so long-lived clients spread again over the nodes behind a load
    /// balancer. `0`: no limit.
    pub max_requests_per_connection: u32,
    /// Time to receive a complete request head, from the moment the
    /// connection opens or its previous response ends: also the idle
    /// keep-alive timeout. A client that is slower is disconnected.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Largest request head (start line and headers); larger gets `431`.
    pub max_header_bytes: usize,
    /// Longest request target (path and query); longer gets `414`.
    pub max_uri_bytes: usize,
    /// One access log line per request, written off the request path.
    pub access_log: bool,
    /// Where access log lines go; standard error when unset. Opened for
    /// appending (so `logrotate`'s `copytruncate` works).
    pub access_log_file: Option<PathBuf>,
    /// The access log's line format.
    pub access_log_format: AccessLogFormat,
    /// Largest WebSocket message (and frame) a client may send; a larger
    /// one closes the connection with code 1009.
    pub websocket_max_message_bytes: usize,
    /// How often the container pings an idle WebSocket client (a client
    /// that does not answer is found dead by TCP); `0s` never.
    #[serde(with = "humantime_serde")]
    pub websocket_ping_interval: Duration,
    /// `[server.tls]`: serve HTTPS on `listen`; unset, plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Addresses of the reverse proxies in front (e.g. `["127.0.0.1"]`):
    /// from them, and only from them, `X-Forwarded-Proto: https` counts as
    /// a request made over TLS (for the session cookie's `Secure`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// `[server.tls]`: the listener's certificate. Both files are read at start
/// (a missing or invalid one stops it) and again on SIGHUP and whenever one
/// of them changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, RSA or SEC1).
    /// May be the same file as `cert`.
    pub key: PathBuf,
}

/// The access log's line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// NCSA common log format, as Tomcat's default `AccessLogValve`:
    /// `host - - [time] "request line" status bytes`.
    Common,
    /// The combined log format, as nginx's default: `common` then
    /// `"referer" "user-agent"`.
    #[default]
    Combined,
    /// `combined` then the app that answered (`-` for none) and the
    /// request time in seconds, with millisecond resolution (nginx's
    /// `$request_time`).
    Extended,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(2),
            max_body_bytes: 2 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_requests_per_connection: 1000,
            header_read_timeout: Duration::from_secs(20),
            max_header_bytes: 32 * 1024,
            max_uri_bytes: 8 * 1024,
            access_log: true,
            access_log_file: None,
            access_log_format: AccessLogFormat::Combined,
            websocket_max_message_bytes: 1024 * 1024,
            websocket_ping_interval: Duration::from_secs(30),
            tls: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[deploy]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// The directory modules are loaded from.
    pub dir: PathBuf,
    /// Watch the directory: new files deploy, replaced ones reload, removed
    /// ones undeploy.
    pub watch: bool,
    /// How often the directory is rescanned even without change events.
    #[serde(with = "humantime_serde")]
    pub scan_interval: Duration,
    /// A file is picked up only once its size, modification time and
    /// inode have not changed for this long.
    #[serde(with = "humantime_serde")]
    pub settle_time: Duration,
    /// On reload, stop and undeploy: how long the old instance's in-flight
    /// requests may take before they are cancelled.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// On reload, stop and undeploy: how long the old instance's streamed
    /// responses (SSE, downloads) may go on before they are cut. (Its
    /// WebSockets are closed at once, with code 1012.)
    #[serde(with = "humantime_serde")]
    pub connection_grace: Duration,
    /// The most bytes an app bundle (`.crabcat`) may unpack to, all its
    /// files together, counted as they are inflated (a zip bomb stops here).
    pub max_bundle_bytes: u64,
    /// The most entries (files and directories) an app bundle may hold.
    pub max_bundle_entries: usize,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            dir: "deploy".into(),
            watch: true,
            scan_interval: Duration::from_secs(2),
            settle_time: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(30),
            connection_grace: Duration::from_secs(10),
            max_bundle_bytes: 512 * 1024 * 1024,
            max_bundle_entries: 10_000,
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener. A non-loopback address needs `token`.
    pub listen: SocketAddr,
    /// The bearer token. Also read from `CRABCAT_ADMIN_TOKEN`. If neither is
    /// set, one is generated at start and written to `token_file`.
    pub token: Option<String>,
    /// Where a generated token is written (readable only by its owner), and
    /// where the admin commands look for it.
    pub token_file: PathBuf,
    /// Largest module upload (`PUT /apps/NAME`); larger gets `413`.
    pub max_upload_bytes: usize,
    /// `[admin.manager]`: Tomcat's manager text API at `/manager/text/`.
    pub manager: ManagerConfig,
}

/// `[admin.manager]`: HTTP Basic credentials of Tomcat's manager text API
/// (`/manager/text/` on the admin listener). The API refuses every call
/// (`401`) while `user` is unset, as a Tomcat with no manager user does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagerConfig {
    /// The Basic user name; unset: the text API is off.
    pub user: Option<String>,
    /// Its password (at least 16 characters). Neither this nor
    /// `password_file` set: the admin token is the password.
    pub password: Option<String>,
    /// A file whose first line is the password; relative to the working
    /// directory, as `admin.token_file`.
    pub password_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            token: None,
            token_file: "data/admin.token".into(),
            max_upload_bytes: 512 * 1024 * 1024,
            manager: ManagerConfig::default(),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `info,crabcat::app=warn`.
    /// `RUST_LOG`, when set, wins.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { filter: "info".into() }
    }
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

/// Command-line overrides, applied last.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--deploy-dir`
    pub deploy_dir: Option<PathBuf>,
    /// `--admin-listen`
    pub admin_listen: Option<SocketAddr>,
}

impl Config {
    /// Loads the layers: defaults, then `file` (required if given), then
    /// `CRABCAT__SECTION__KEY` environment variables, then `overrides`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the bad key.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("CRABCAT")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        if let Some(listen) = overrides.listen {
            builder = builder.set_override("server.listen", listen.to_string())?;
        }
        if let Some(dir) = &overrides.deploy_dir {
            builder = builder.set_override("deploy.dir", dir.to_string_lossy().into_owned())?;
        }
        if let Some(listen) = overrides.admin_listen {
            builder = builder.set_override("admin.listen", listen.to_string())?;
        }
        if let Ok(token) = std::env::var("CRABCAT_ADMIN_TOKEN")
            && !token.is_empty()
        {
            builder = builder.set_override("admin.token", token)?;
        }
        let mut config: Config = builder.build()?.try_deserialize()?;
        config.datasources.entry("default".to_owned()).or_default();
        if let Some(base) = file.and_then(Path::parent) {
            config.anchor_static_dirs(base);
        }
        config.validate()?;
        Ok(config)
    }

    /// Resolves the relative static directories against `base`, the
    /// configuration file's directory.
    fn anchor_static_dirs(&mut self, base: &Path) {
        let dirs = self.apps.values_mut().filter_map(|a| a.static_dir.as_mut());
        for dir in dirs.chain(self.statics.values_mut().map(|s| &mut s.dir)) {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
    }

    /// The settings of app `name`: its section, or the defaults.
    pub fn app(&self, name: &str) -> AppConfig {
        self.apps.get(name).cloned().unwrap_or_default()
    }

    /// The datasources app `name` may use (its own setting, or `default`).
    pub fn app_datasources(&self, name: &str) -> Vec<String> {
        self.apps
            .get(name)
            .map_or_else(|| vec!["default".to_owned()], |a| a.datasources.clone())
    }

    /// The context path of app `name`: configured, or `/name` (`/` for
    /// `ROOT`).
    pub fn context_path(&self, name: &str) -> String {
        self.apps
            .get(name)
            .and_then(|a| a.context_path.clone())
            .unwrap_or_else(|| default_context_path(name))
    }
}

/// The context path of app `name` when its section sets none: `/NAME`,
/// and `/` for `ROOT` (Tomcat's name for the root context).
pub fn default_context_path(name: &str) -> String {
    if name == ROOT_APP {
        "/".to_owned()
    } else {
        format!("/{name}")
    }
}

/// The app name mounted at `/` unless configured otherwise, as Tomcat's
/// `ROOT`.
pub const ROOT_APP: &str = "ROOT";

mod validate;

pub use validate::is_valid_context_path;

#[cfg(test)]
mod tests;
