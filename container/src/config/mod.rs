//! Configuration: built-in defaults < `crabcat.toml` < `CRABCAT__...`
//! environment variables < command-line flags. One typed section per
//! subsystem; unknown keys are errors. Validated before any port is bound.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod admin;
mod apps;
mod datasource;
mod deploy;
mod server;
mod sessions;
mod validate;

pub use admin::{AdminConfig, ManagerConfig};
pub use apps::{AppConfig, DEFAULT_STATIC_CACHE_CONTROL, StaticConfig};
pub use datasource::DatasourceConfig;
pub use deploy::DeployConfig;
pub use server::{AccessLogFormat, ServerConfig, TlsConfig};
pub use sessions::SessionsConfig;
pub use validate::is_valid_context_path;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The PostgreSQL datasource the nodes share; empty (the default):
    /// not a cluster.
    pub datasource: String,
    /// This node's name in the cluster; unset: the host name and the HTTP
    /// port (`web-1:8080`).
    pub node: Option<String>,
    /// How long a node waits before it tries again to install a deployment
    /// it failed to install (30 s).
    #[serde(with = "humantime_serde")]
    pub retry: std::time::Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            datasource: String::new(),
            node: None,
            retry: std::time::Duration::from_secs(30),
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

#[cfg(test)]
mod tests;
