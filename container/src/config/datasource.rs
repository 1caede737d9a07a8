//! `[datasources.NAME]`: the named connection pools.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
