//! The session store: two tables on a datasource (`migrations/0002_sessions.sql`),
//! one row per session and one per attribute, found by the id's hash.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::{AssertSqlSafe, Row as _};

use crate::db::{Backend, Datasource, for_backend, on_pool};

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The container's schema could not be applied to the datasource.
    #[error("the session store (datasource {datasource}) has no schema: {source}")]
    Schema {
        datasource: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("the session store (datasource {datasource}) failed: {source}")]
    Query {
        datasource: String,
        #[source]
        source: sqlx::Error,
    },
}

/// A session the store holds.
#[derive(Debug)]
pub struct Found {
    /// When it was created (Unix milliseconds).
    pub created_at: i64,
    /// When it was last written back.
    pub accessed_at: i64,
    /// Its attributes.
    pub values: BTreeMap<String, Vec<u8>>,
}

/// The sessions of every app, on one datasource.
pub struct Store {
    ds: Arc<Datasource>,
    /// Something was written since the sweeper last looked.
    written: AtomicBool,
}

/// How [`Store::write`] writes the session's own row.
enum Head<'a> {
    /// A new session of app `app`.
    Insert { app: &'a str },
    /// The stored session `old` (moved to the new hash if it differs).
    Update { old: &'a str },
}

fn borrowed(changes: &BTreeMap<String, Option<Vec<u8>>>) -> Vec<(&str, Option<&[u8]>)> {
    changes.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect()
}

const UPSERT: &str = "INSERT INTO crabcat_session_values (id_hash, name, value) VALUES ($1, $2, $3) \
                      ON CONFLICT (id_hash, name) DO UPDATE SET value = excluded.value";
const UPSERT_MYSQL: &str = "INSERT INTO crabcat_session_values (id_hash, name, value) VALUES (?, ?, ?) \
                            ON DUPLICATE KEY UPDATE value = VALUES(value)";

impl Store {
    /// Sessions kept on `ds`.
    pub fn new(ds: Arc<Datasource>) -> Self {
        Store {
            ds,
            written: AtomicBool::new(false),
        }
    }

    /// The datasource's name.
    pub fn datasource(&self) -> &str {
        &self.ds.name
    }

    fn query_error(&self) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        |source| StoreError::Query {
            datasource: self.ds.name.clone(),
            source,
        }
    }

    /// Applies the schema if it is not yet.
    ///
    /// # Errors
    /// The schema could not be applied.
    pub async fn prepare(&self) -> Result<(), StoreError> {
        self.ready().await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.ds.ensure_schema().await.map_err(|source| StoreError::Schema {
            datasource: self.ds.name.clone(),
            source,
        })
    }

    /// Whether sessions were written since the last call.
    pub fn take_written(&self) -> bool {
        self.written.swap(false, Ordering::Relaxed)
    }

    /// App `app`'s session whose id hashes to `hash`, unless it expired by `now`.
    ///
    /// # Errors
    /// The store could not be read.
    pub async fn load(&self, app: &str, hash: &str, now: i64) -> Result<Option<Found>, StoreError> {
        self.ready().await?;
        let ds = &self.ds;
        let head = for_backend(
            ds,
            "SELECT created_at, accessed_at FROM crabcat_sessions WHERE id_hash = $1 AND app = $2 AND expires_at > $3",
        );
        let values = for_backend(ds, "SELECT name, value FROM crabcat_session_values WHERE id_hash = $1");
        let found = on_pool!(&ds.pool, pool => {
            let head = sqlx::query(head).bind(hash).bind(app).bind(now).fetch_optional(pool).await;
            match head.map_err(self.query_error())? {
                None => None,
                Some(row) => {
                    let rows = sqlx::query(values).bind(hash).fetch_all(pool).await.map_err(self.query_error())?;
                    let mut found = Found {
                        created_at: row.try_get(0).map_err(self.query_error())?,
                        accessed_at: row.try_get(1).map_err(self.query_error())?,
                        values: BTreeMap::new(),
                    };
                    for row in rows {
                        let name: String = row.try_get(0).map_err(self.query_error())?;
                        let value: String = row.try_get(1).map_err(self.query_error())?;
                        found.values.insert(name, value.into_bytes());
                    }
                    Some(found)
                }
            }
        });
        Ok(found)
    }

    /// Stores a new session of app `app` with `values`.
    ///
    /// # Errors
    /// The store could not be written.
    pub async fn insert(
        &self,
        hash: &str,
        app: &str,
        now: i64,
        expires: i64,
        values: &BTreeMap<String, Vec<u8>>,
    ) -> Result<(), StoreError> {
        let changes = values.iter().map(|(k, v)| (k.as_str(), Some(v.as_slice()))).collect();
        self.write(Head::Insert { app }, hash, now, expires, changes).await
    }

    /// Writes `changes` (and the access time) to a stored session; nothing
    /// if it is gone (invalidated or expired meanwhile).
    ///
    /// # Errors
    /// The store could not be written.
    pub async fn update(
        &self,
        hash: &str,
        now: i64,
        expires: i64,
        changes: &BTreeMap<String, Option<Vec<u8>>>,
    ) -> Result<(), StoreError> {
        self.write(Head::Update { old: hash }, hash, now, expires, borrowed(changes))
            .await
    }

    /// Moves a stored session to a new id hash, with `changes`.
    ///
    /// # Errors
    /// The store could not be written.
    pub async fn rekey(
        &self,
        old: &str,
        new: &str,
        now: i64,
        expires: i64,
        changes: &BTreeMap<String, Option<Vec<u8>>>,
    ) -> Result<(), StoreError> {
        self.write(Head::Update { old }, new, now, expires, borrowed(changes))
            .await
    }

    /// Writes session `hash`'s row (as `head` says) and its changed
    /// attributes, in one transaction.
    async fn write(
        &self,
        head: Head<'_>,
        hash: &str,
        now: i64,
        expires: i64,
        changes: Vec<(&str, Option<&[u8]>)>,
    ) -> Result<(), StoreError> {
        self.ready().await?;
        self.written.store(true, Ordering::Relaxed);
        let ds = &self.ds;
        let sql = |s: &str| for_backend(ds, s).0;
        let insert = sql(
            "INSERT INTO crabcat_sessions (id_hash, app, created_at, accessed_at, expires_at) \
                          VALUES ($1, $2, $3, $4, $5)",
        );
        let update =
            sql("UPDATE crabcat_sessions SET id_hash = $1, accessed_at = $2, expires_at = $3 WHERE id_hash = $4");
        let move_values = sql("UPDATE crabcat_session_values SET id_hash = $1 WHERE id_hash = $2");
        let upsert = match ds.backend() {
            Backend::Mysql => UPSERT_MYSQL.to_owned(),
            Backend::Sqlite | Backend::Postgres => UPSERT.to_owned(),
        };
        let delete = sql("DELETE FROM crabcat_session_values WHERE id_hash = $1 AND name = $2");
        let fail = self.query_error();
        on_pool!(&ds.pool, pool => {
            let mut tx = pool.begin().await.map_err(&fail)?;
            match head {
                Head::Insert { app } => {
                    let query = sqlx::query(AssertSqlSafe(insert)).bind(hash).bind(app).bind(now).bind(now).bind(expires);
                    query.execute(&mut *tx).await.map_err(&fail)?;
                }
                Head::Update { old } => {
                    let query = sqlx::query(AssertSqlSafe(update)).bind(hash).bind(now).bind(expires).bind(old);
                    if query.execute(&mut *tx).await.map_err(&fail)?.rows_affected() == 0 {
                        // Gone meanwhile: invalidation wins.
                        return Ok(());
                    }
                    if old != hash {
                        let query = sqlx::query(AssertSqlSafe(move_values)).bind(hash).bind(old);
                        query.execute(&mut *tx).await.map_err(&fail)?;
                    }
                }
            }
            for (name, value) in changes {
                let done = match value {
                    // The SDK writes JSON text: always UTF-8.
                    Some(value) => {
                        let value = std::str::from_utf8(value).unwrap_or("null");
                        let query = sqlx::query(AssertSqlSafe(upsert.clone())).bind(hash).bind(name).bind(value);
                        query.execute(&mut *tx).await
                    }
                    None => sqlx::query(AssertSqlSafe(delete.clone())).bind(hash).bind(name).execute(&mut *tx).await,
                };
                done.map_err(&fail)?;
            }
            tx.commit().await.map_err(&fail)?;
        });
        Ok(())
    }

    /// Writes a session's access time back.
    ///
    /// # Errors
    /// The store could not be written.
    pub async fn touch(&self, hash: &str, now: i64, expires: i64) -> Result<(), StoreError> {
        self.write(Head::Update { old: hash }, hash, now, expires, Vec::new())
            .await
    }

    /// Deletes a session.
    ///
    /// # Errors
    /// The store could not be written.
    pub async fn delete(&self, hash: &str) -> Result<(), StoreError> {
        self.ready().await?;
        let ds = &self.ds;
        let head = for_backend(ds, "DELETE FROM crabcat_sessions WHERE id_hash = $1");
        let values = for_backend(ds, "DELETE FROM crabcat_session_values WHERE id_hash = $1");
        on_pool!(&ds.pool, pool => {
            let mut tx = pool.begin().await.map_err(self.query_error())?;
            sqlx::query(head).bind(hash).execute(&mut *tx).await.map_err(self.query_error())?;
            sqlx::query(values).bind(hash).execute(&mut *tx).await.map_err(self.query_error())?;
            tx.commit().await.map_err(self.query_error())?;
        });
        Ok(())
    }

    /// Deletes the sessions that expired by `now`; how many, and the
    /// earliest expiry of those left.
    ///
    /// # Errors
    /// The store could not be written.
    pub async fn sweep(&self, now: i64) -> Result<(u64, Option<i64>), StoreError> {
        let swept = self.expire_where("expires_at <= $1", &[now]).await?;
        let ds = &self.ds;
        let next = for_backend(ds, "SELECT MIN(expires_at) FROM crabcat_sessions");
        let next: Option<i64> = on_pool!(&ds.pool, pool => {
            sqlx::query_scalar(next).fetch_one(pool).await.map_err(self.query_error())?
        });
        Ok((swept, next))
    }

    /// Deletes app `app`'s sessions idle for at least `idle_millis` at
    /// `now` (every one for 0); how many.
    ///
    /// # Errors
    /// The store could not be written.
    pub async fn expire(&self, app: &str, now: i64, idle_millis: i64) -> Result<u64, StoreError> {
        self.ready().await?;
        let ds = &self.ds;
        let head = for_backend(
            ds,
            "DELETE FROM crabcat_session_values WHERE id_hash IN \
             (SELECT id_hash FROM crabcat_sessions WHERE app = $1 AND accessed_at <= $2)",
        );
        let rows = for_backend(ds, "DELETE FROM crabcat_sessions WHERE app = $1 AND accessed_at <= $2");
        let before = now.saturating_sub(idle_millis);
        let deleted = on_pool!(&ds.pool, pool => {
            let mut tx = pool.begin().await.map_err(self.query_error())?;
            sqlx::query(head).bind(app).bind(before).execute(&mut *tx).await.map_err(self.query_error())?;
            let done = sqlx::query(rows).bind(app).bind(before).execute(&mut *tx).await.map_err(self.query_error())?;
            tx.commit().await.map_err(self.query_error())?;
            done.rows_affected()
        });
        Ok(deleted)
    }

    async fn expire_where(&self, condition: &str, binds: &[i64]) -> Result<u64, StoreError> {
        self.ready().await?;
        let ds = &self.ds;
        let values = for_backend(
            ds,
            &format!(
                "DELETE FROM crabcat_session_values WHERE id_hash IN (SELECT id_hash FROM crabcat_sessions WHERE {condition})"
            ),
        );
        let rows = for_backend(ds, &format!("DELETE FROM crabcat_sessions WHERE {condition}"));
        let deleted = on_pool!(&ds.pool, pool => {
            let mut tx = pool.begin().await.map_err(self.query_error())?;
            let mut query = sqlx::query(values);
            for bind in binds {
                query = query.bind(*bind);
            }
            query.execute(&mut *tx).await.map_err(self.query_error())?;
            let mut query = sqlx::query(rows);
            for bind in binds {
                query = query.bind(*bind);
            }
            let done = query.execute(&mut *tx).await.map_err(self.query_error())?;
            tx.commit().await.map_err(self.query_error())?;
            done.rows_affected()
        });
        Ok(deleted)
    }

    /// When each live session of app `app` was last written back.
    ///
    /// # Errors
    /// The store could not be read.
    pub async fn accessed_times(&self, app: &str, now: i64) -> Result<Vec<i64>, StoreError> {
        self.ready().await?;
        let ds = &self.ds;
        let sql = for_backend(
            ds,
            "SELECT accessed_at FROM crabcat_sessions WHERE app = $1 AND expires_at > $2",
        );
        let times = on_pool!(&ds.pool, pool => {
            sqlx::query_scalar(sql).bind(app).bind(now).fetch_all(pool).await.map_err(self.query_error())?
        });
        Ok(times)
    }

    /// Live sessions per app at `now`.
    ///
    /// # Errors
    /// The store could not be read.
    pub async fn counts(&self, now: i64) -> Result<BTreeMap<String, u64>, StoreError> {
        self.ready().await?;
        let ds = &self.ds;
        let sql = for_backend(
            ds,
            "SELECT app, COUNT(*) FROM crabcat_sessions WHERE expires_at > $1 GROUP BY app",
        );
        let counts = on_pool!(&ds.pool, pool => {
            let rows = sqlx::query(sql).bind(now).fetch_all(pool).await.map_err(self.query_error())?;
            let mut counts = BTreeMap::new();
            for row in rows {
                let app: String = row.try_get(0).map_err(self.query_error())?;
                let count: i64 = row.try_get(1).map_err(self.query_error())?;
                counts.insert(app, u64::try_from(count).unwrap_or(0));
            }
            counts
        });
        Ok(counts)
    }
}
