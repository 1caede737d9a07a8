//! Migrations: the container's own schema (sqlx's migrator, embedded) and
//! each app's migrations, applied in order with a checksum before its init.

// Its errors carry every name a reader needs; the path runs at deploy
// time, never per request, so their size does not matter.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;

use sha2::{Digest, Sha256};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

use super::pool::{Backend, Datasource, on_pool};

/// One migration of an app, with its per-backend variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMigration {
    /// Applied in ascending order.
    pub version: i64,
    /// For messages.
    pub description: String,
    /// SQL every backend runs unless it has its own variant.
    pub sql: String,
    /// `(backend, sql)` variants.
    pub variants: Vec<(String, String)>,
}

impl AppMigration {
    fn sql_for(&self, backend: &str) -> &str {
        self.variants
            .iter()
            .find(|(b, _)| b == backend)
            .map_or(self.sql.as_str(), |(_, sql)| sql.as_str())
    }
}

/// Applies the container's schema (`migrations/` at the repository root;
/// MySQL has variants of its own: its keys cannot be `TEXT`).
pub(super) async fn container_schema(ds: &Datasource) -> Result<(), sqlx::migrate::MigrateError> {
    let scripts = match ds.backend() {
        Backend::Mysql => [
            include_str!("../../../migrations/mysql/0001_app_migrations.sql"),
            include_str!("../../../migrations/mysql/0002_sessions.sql"),
        ],
        Backend::Sqlite | Backend::Postgres => [
            include_str!("../../../migrations/0001_app_migrations.sql"),
            include_str!("../../../migrations/0002_sessions.sql"),
        ],
    };
    let descriptions = ["app migrations", "sessions"];
    let migrations = (1..)
        .zip(descriptions)
        .zip(scripts)
        .map(|((version, description), sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        });
    let migrator = Migrator::with_migrations(migrations.collect());
    on_pool!(&ds.pool, pool => migrator.run(pool).await)
}

/// The container's own `sql` for `ds`: its `$N` placeholders (numbered in
/// order, so the values bind as they are) become `?` on MySQL.
pub(crate) fn for_backend(ds: &Datasource, sql: &str) -> AssertSqlSafe<String> {
    let rewritten = match ds.backend() {
        Backend::Mysql => super::placeholders::rewrite(sql).ok().flatten().map(|r| r.sql),
        Backend::Sqlite | Backend::Postgres => None,
    };
    AssertSqlSafe(rewritten.unwrap_or_else(|| sql.to_owned()))
}

fn checksum(sql: &str) -> String {
    format!("{:x}", Sha256::digest(sql.as_bytes()))
}

/// Why an app's migrations could not be applied. Nothing of a failed
/// migration stays applied on SQLite and PostgreSQL (transactional DDL);
/// on MySQL/MariaDB each DDL statement commits by itself, so a migration
/// that fails halfway keeps the DDL that ran before the failure.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// Two migrations share a version.
    #[error("app {app} declares migration {version} twice")]
    Duplicate { app: String, version: i64 },
    /// The container's own tables could not be created.
    #[error("cannot prepare datasource {datasource}")]
    Prepare {
        datasource: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The record of applied migrations could not be read.
    #[error("cannot read the migrations of app {app} on datasource {datasource}")]
    Read {
        app: String,
        datasource: String,
        #[source]
        source: sqlx::Error,
    },
    /// An applied migration is gone from the module.
    #[error(
        "migration {version} ({description}) of app {app} was applied on datasource {datasource} but the module no longer has it"
    )]
    Missing {
        app: String,
        datasource: String,
        version: i64,
        description: String,
    },
    /// An applied migration's SQL changed.
    #[error(
        "migration {version} ({description}) of app {app} was edited after it was applied on datasource {datasource} \
         (checksum {then} then, {now} now); add a new migration instead"
    )]
    Edited {
        app: String,
        datasource: String,
        version: i64,
        description: String,
        then: String,
        now: String,
    },
    /// A migration's SQL failed.
    #[error("migration {version} ({description}) of app {app} failed")]
    Failed {
        app: String,
        version: i64,
        description: String,
        #[source]
        source: sqlx::Error,
    },
}

/// Applies `app`'s pending migrations on `ds`, each in its own transaction
/// together with its record; checks that applied ones were not edited.
/// Returns how many were applied.
///
/// # Errors
/// A [`MigrationError`] naming the migration and the reason.
pub async fn apply_app_migrations(
    ds: &Datasource,
    app: &str,
    migrations: &[AppMigration],
) -> Result<usize, MigrationError> {
    let mut sorted: Vec<&AppMigration> = migrations.iter().collect();
    sorted.sort_by_key(|m| m.version);
    if let Some(pair) = sorted.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(MigrationError::Duplicate {
            app: app.to_owned(),
            version: pair[0].version,
        });
    }
    ds.ensure_schema().await.map_err(|source| MigrationError::Prepare {
        datasource: ds.name.clone(),
        source,
    })?;
    let applied = applied(ds, app).await?;
    for (version, description, sum) in &applied {
        check_applied(ds, app, &sorted, *version, description, sum)?;
    }
    let mut count = 0;
    for m in sorted
        .iter()
        .filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
    {
        apply_one(ds, app, m).await?;
        tracing::info!(app, version = m.version, description = %m.description, datasource = %ds.name, "migration applied");
        count += 1;
    }
    Ok(count)
}

/// Checks that applied migration `version` is still in the module, unedited.
fn check_applied(
    ds: &Datasource,
    app: &str,
    module: &[&AppMigration],
    version: i64,
    description: &str,
    sum: &str,
) -> Result<(), MigrationError> {
    let (app, datasource, description) = (app.to_owned(), ds.name.clone(), description.to_owned());
    let Some(m) = module.iter().find(|m| m.version == version) else {
        return Err(MigrationError::Missing {
            app,
            datasource,
            version,
            description,
        });
    };
    let now = checksum(m.sql_for(ds.backend().name()));
    if now != sum {
        return Err(MigrationError::Edited {
            app,
            datasource,
            version,
            description,
            then: sum.to_owned(),
            now,
        });
    }
    Ok(())
}

async fn applied(ds: &Datasource, app: &str) -> Result<Vec<(i64, String, String)>, MigrationError> {
    let sql = for_backend(
        ds,
        "SELECT version, description, checksum FROM crabcat_app_migrations WHERE app = $1 ORDER BY version",
    );
    on_pool!(&ds.pool, pool => sqlx::query_as(sql).bind(app).fetch_all(pool).await).map_err(|source| {
        MigrationError::Read {
            app: app.to_owned(),
            datasource: ds.name.clone(),
            source,
        }
    })
}

async fn apply_one(ds: &Datasource, app: &str, m: &AppMigration) -> Result<(), MigrationError> {
    let sql = m.sql_for(ds.backend().name()).to_owned();
    let record = for_backend(
        ds,
        "INSERT INTO crabcat_app_migrations (app, version, description, checksum, applied_at) \
         VALUES ($1, $2, $3, $4, $5)",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let sum = checksum(&sql);
    let result: Result<(), sqlx::Error> = on_pool!(&ds.pool, pool => async {
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await?;
        sqlx::query(record)
            .bind(app)
            .bind(m.version)
            .bind(&m.description)
            .bind(sum)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }.await);
    result.map_err(|source| MigrationError::Failed {
        app: app.to_owned(),
        version: m.version,
        description: m.description.clone(),
        source,
    })
}
