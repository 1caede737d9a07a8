//! Named datasources: one sqlx pool each, created from the config. Pools
//! connect lazily, so an unreachable database does not stop the container.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{MySqlPool, PgPool, SqlitePool};

use crate::config::DatasourceConfig;

/// Why a datasource could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The URL is not one Crabcat supports.
    #[error("datasource {name}: unsupported URL scheme in {url:?} (use sqlite://, postgres:// or mysql://)")]
    Scheme { name: String, url: String },
    /// sqlx refused the URL.
    #[error("datasource {name}: invalid URL: {source}")]
    Url {
        name: String,
        #[source]
        source: sqlx::Error,
    },
    /// The directory of a SQLite file could not be created.
    #[error("datasource {name}: cannot create {dir}: {source}")]
    Dir {
        name: String,
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// The database behind a datasource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
    /// A MySQL or MariaDB server.
    Mysql,
}

impl Backend {
    /// `sqlite`, `postgres` or `mysql`, as in migration variants.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
        }
    }
}

/// Runs the same code on any pool: `on_pool!(&ds.pool, p => query.fetch_all(p).await)`.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($p) => $body,
            $crate::db::Pool::Postgres($p) => $body,
            $crate::db::Pool::Mysql($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A pool of any backend.
#[derive(Clone)]
pub enum Pool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
    /// MySQL or MariaDB.
    Mysql(MySqlPool),
}

/// One named datasource.
pub struct Datasource {
    /// Its name in the config.
    pub name: String,
    /// Its pool.
    pub pool: Pool,
    schema: tokio::sync::OnceCell<()>,
}

impl Datasource {
    /// Which database it is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Mysql(_) => Backend::Mysql,
        }
    }

    /// Applies the container's own schema (once per process; retried after
    /// a failure).
    ///
    /// # Errors
    /// The migrator's error.
    pub async fn ensure_schema(&self) -> Result<(), sqlx::migrate::MigrateError> {
        self.schema
            .get_or_try_init(|| super::migrate::container_schema(self))
            .await
            .map(drop)
    }

    /// Connections in use and idle, for metrics.
    pub fn usage(&self) -> (u32, usize) {
        on_pool!(&self.pool, p => (p.size(), p.num_idle()))
    }
}

/// Every configured datasource, by name.
#[derive(Default)]
pub struct Datasources {
    by_name: BTreeMap<String, Arc<Datasource>>,
}

impl Datasources {
    /// Creates a (lazy) pool per configured datasource.
    ///
    /// # Errors
    /// A [`SetupError`] for the first bad datasource.
    pub fn from_config(configs: &BTreeMap<String, DatasourceConfig>) -> Result<Self, SetupError> {
        let mut by_name = BTreeMap::new();
        for (name, config) in configs {
            let pool = create_pool(name, config)?;
            let datasource = Datasource {
                name: name.clone(),
                pool,
                schema: tokio::sync::OnceCell::new(),
            };
            by_name.insert(name.clone(), Arc::new(datasource));
        }
        Ok(Datasources { by_name })
    }

    /// Datasource `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Datasource>> {
        self.by_name.get(name)
    }

    /// All of them.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Datasource>> {
        self.by_name.values()
    }
}

/// The pool settings shared by every backend.
macro_rules! pool_options {
    ($options:expr, $config:expr) => {
        $options
            .min_connections($config.min_connections)
            .max_connections($config.max_connections)
            .acquire_timeout($config.acquire_timeout)
            .idle_timeout($config.idle_timeout)
            .max_lifetime($config.max_lifetime)
    };
}

fn create_pool(name: &str, config: &DatasourceConfig) -> Result<Pool, SetupError> {
    let url = config.url.as_str();
    let url_error = |source| SetupError::Url {
        name: name.to_owned(),
        source,
    };
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(url_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(config.acquire_timeout);
        create_parent_dir(name, options.get_filename())?;
        let pool = pool_options!(SqlitePoolOptions::new(), config).connect_lazy_with(options);
        Ok(Pool::Sqlite(pool))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let mut options = PgConnectOptions::from_str(url).map_err(url_error)?;
        if let Some(timeout) = config.statement_timeout {
            options = options.options([("statement_timeout", timeout.as_millis().to_string())]);
        }
        let pool = pool_options!(PgPoolOptions::new(), config).connect_lazy_with(options);
        Ok(Pool::Postgres(pool))
    } else if let Some(rest) = url.strip_prefix("mysql:").or_else(|| url.strip_prefix("mariadb:")) {
        // sqlx knows only the `mysql:` scheme; `mariadb:` is an alias.
        let options = MySqlConnectOptions::from_str(&format!("mysql:{rest}")).map_err(url_error)?;
        let mut pool = pool_options!(MySqlPoolOptions::new(), config);
        if let Some(timeout) = config.statement_timeout {
            pool = pool.after_connect(move |conn, _| Box::pin(mysql_statement_timeout(conn, timeout)));
        }
        Ok(Pool::Mysql(pool.connect_lazy_with(options)))
    } else {
        Err(SetupError::Scheme {
            name: name.to_owned(),
            url: url.split('@').next_back().unwrap_or(url).to_owned(),
        })
    }
}

/// Sets the statement timeout of a new MySQL connection: MariaDB's
/// `max_statement_time` (seconds, every statement), else MySQL's
/// `max_execution_time` (milliseconds, `SELECT` only).
async fn mysql_statement_timeout(
    conn: &mut sqlx::MySqlConnection,
    timeout: std::time::Duration,
) -> Result<(), sqlx::Error> {
    let mariadb = format!("SET SESSION max_statement_time = {}", timeout.as_secs_f64());
    if sqlx::raw_sql(sqlx::AssertSqlSafe(mariadb))
        .execute(&mut *conn)
        .await
        .is_ok()
    {
        return Ok(());
    }
    let mysql = format!("SET SESSION max_execution_time = {}", timeout.as_millis());
    sqlx::raw_sql(sqlx::AssertSqlSafe(mysql)).execute(conn).await.map(drop)
}

fn create_parent_dir(name: &str, file: &Path) -> Result<(), SetupError> {
    match file.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if file.to_str() != Some(":memory:") => {
            std::fs::create_dir_all(dir).map_err(|source| SetupError::Dir {
                name: name.to_owned(),
                dir: dir.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}
