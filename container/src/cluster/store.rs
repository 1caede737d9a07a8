//! The cluster's tables in PostgreSQL: each app's current deployment (the
//! bytes, their SHA-256, version, who and when; no bytes once undeployed)
//! and what each node runs; and the hub's messages too large for a
//! notification (`bus`).

use sqlx::postgres::{PgListener, PgPool};

/// The schema, created by the first node that starts (under an advisory
/// lock: two nodes starting at once must not both create it).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS crabcat_cluster_apps (
    app         TEXT    PRIMARY KEY,
    sha256      TEXT    NOT NULL,
    version     TEXT,
    bundle      BOOLEAN NOT NULL,
    bytes       BYTEA,
    deployed_by TEXT    NOT NULL,
    deployed_at BIGINT  NOT NULL
);
CREATE TABLE IF NOT EXISTS crabcat_cluster_nodes (
    node       TEXT   NOT NULL,
    app        TEXT   NOT NULL,
    sha256     TEXT,
    version    TEXT,
    state      TEXT   NOT NULL,
    error      TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (node, app)
);
CREATE TABLE IF NOT EXISTS crabcat_cluster_hub (
    id         BIGSERIAL PRIMARY KEY,
    payload    BYTEA     NOT NULL,
    created_at BIGINT    NOT NULL
);";

/// An arbitrary constant: the advisory lock the schema is created under.
const SCHEMA_LOCK: i64 = 0x6372_6162_6361_7401;

/// An app's current deployment.
pub struct Deployment {
    pub sha256: String,
    /// `None`: undeployed.
    pub bytes: Option<Vec<u8>>,
    pub deployed_by: String,
}

/// What one node says it runs of one app.
#[derive(Debug, serde::Serialize)]
pub struct NodeApp {
    pub node: String,
    pub app: String,
    pub sha256: Option<String>,
    pub version: Option<String>,
    pub state: String,
    pub error: Option<String>,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// A row of `crabcat_cluster_nodes`, as `SELECT` reads it.
type NodeRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    i64,
);

/// The cluster's tables.
pub struct Store {
    pool: PgPool,
    schema: tokio::sync::OnceCell<()>,
}

pub(super) fn now_millis() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Store {
            pool,
            schema: tokio::sync::OnceCell::new(),
        }
    }

    /// The cluster's database.
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the tables once.
    pub(super) async fn ready(&self) -> Result<(), sqlx::Error> {
        self.schema
            .get_or_try_init(|| async {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SCHEMA_LOCK)
                    .execute(&mut *tx)
                    .await?;
                sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
                tx.commit().await
            })
            .await
            .map(drop)
    }

    /// A listener on `channel`.
    pub async fn listener(&self, channel: &str) -> Result<PgListener, sqlx::Error> {
        self.ready().await?;
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(channel).await?;
        Ok(listener)
    }

    /// Stores app `app`'s new deployment and announces it, in one
    /// transaction (the `NOTIFY` is delivered at commit).
    pub async fn publish(
        &self,
        app: &str,
        sha256: &str,
        version: Option<&str>,
        bundle: bool,
        bytes: &[u8],
        who: &str,
    ) -> Result<(), sqlx::Error> {
        self.ready().await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO crabcat_cluster_apps (app, sha256, version, bundle, bytes, deployed_by, deployed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (app) DO UPDATE SET sha256 = excluded.sha256, version = excluded.version, \
             bundle = excluded.bundle, bytes = excluded.bytes, deployed_by = excluded.deployed_by, \
             deployed_at = excluded.deployed_at",
        )
        .bind(app)
        .bind(sha256)
        .bind(version)
        .bind(bundle)
        .bind(bytes)
        .bind(who)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        notify(&mut tx, app).await?;
        tx.commit().await
    }

    /// Marks app `app` undeployed and announces it.
    pub async fn undeploy(&self, app: &str, who: &str) -> Result<(), sqlx::Error> {
        self.ready().await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE crabcat_cluster_apps SET bytes = NULL, sha256 = '', version = NULL, deployed_by = $2, \
             deployed_at = $3 WHERE app = $1",
        )
        .bind(app)
        .bind(who)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        notify(&mut tx, app).await?;
        tx.commit().await
    }

    /// Every app the cluster knows (deployed or undeployed).
    pub async fn apps(&self) -> Result<Vec<String>, sqlx::Error> {
        self.ready().await?;
        sqlx::query_scalar("SELECT app FROM crabcat_cluster_apps ORDER BY app")
            .fetch_all(&self.pool)
            .await
    }

    /// App `app`'s current deployment, if the cluster knows it.
    pub async fn deployment(&self, app: &str) -> Result<Option<Deployment>, sqlx::Error> {
        self.ready().await?;
        let row: Option<(String, Option<Vec<u8>>, String)> =
            sqlx::query_as("SELECT sha256, bytes, deployed_by FROM crabcat_cluster_apps WHERE app = $1")
                .bind(app)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(sha256, bytes, deployed_by)| Deployment {
            sha256,
            bytes,
            deployed_by,
        }))
    }

    /// Records what `node` runs of `app`.
    pub async fn record(
        &self,
        node: &str,
        app: &str,
        sha256: Option<&str>,
        version: Option<&str>,
        state: &str,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        self.ready().await?;
        sqlx::query(
            "INSERT INTO crabcat_cluster_nodes (node, app, sha256, version, state, error, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (node, app) DO UPDATE SET sha256 = excluded.sha256, version = excluded.version, \
             state = excluded.state, error = excluded.error, updated_at = excluded.updated_at",
        )
        .bind(node)
        .bind(app)
        .bind(sha256)
        .bind(version)
        .bind(state)
        .bind(error)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// What every node says it runs, by app then node.
    pub async fn nodes(&self) -> Result<Vec<NodeApp>, sqlx::Error> {
        self.ready().await?;
        let rows: Vec<NodeRow> = sqlx::query_as(
            "SELECT node, app, sha256, version, state, error, updated_at FROM crabcat_cluster_nodes ORDER BY app, node",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(node, app, sha256, version, state, error, updated_at)| NodeApp {
                node,
                app,
                sha256,
                version,
                state,
                error,
                updated_at,
            })
            .collect())
    }
}

async fn notify(tx: &mut sqlx::PgConnection, app: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(super::CHANNEL)
        .bind(app)
        .execute(tx)
        .await
        .map(drop)
}
