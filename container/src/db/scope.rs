//! What an app may use, and what one request holds open.
//!
//! A [`RequestScope`] owns every transaction a request begins (and the
//! route's managed one). When the request ends the container closes the
//! scope: anything still open is rolled back, returned to the pool and
//! logged as a leak.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crabcat_sdk::abi::wire::{ErrorKind, Value};
use sqlx::{MySql, Postgres, Sqlite};

use super::exec::{self, Done, Failure, Op, RowSink};
use super::pool::{Datasource, Pool};

/// The datasources an app was granted; the first is its default.
///
/// Each stripe of worker threads has a copy, whose reference count its
/// requests' scopes share (see `lifecycle::Share`): aligned to a cache
/// line pair so that no two copies share one.
#[derive(Clone)]
#[repr(align(128))]
pub struct AppData {
    /// The app name.
    pub name: Arc<str>,
    granted: Vec<Arc<Datasource>>,
}

impl AppData {
    /// An app's grants.
    pub fn new(name: Arc<str>, granted: Vec<Arc<Datasource>>) -> Self {
        AppData { name, granted }
    }

    /// The default datasource, if the app was granted any.
    pub fn default_datasource(&self) -> Option<&Arc<Datasource>> {
        self.granted.first()
    }

    fn resolve(&self, name: &str) -> Result<&Arc<Datasource>, Failure> {
        let found = if name.is_empty() {
            self.granted.first()
        } else {
            self.granted.iter().find(|d| d.name == name)
        };
        found.ok_or_else(|| {
            let what = if name.is_empty() { "any datasource" } else { name };
            (
                ErrorKind::PermissionDenied,
                format!(
                    "app {} is not granted {what} (see apps.{}.datasources)",
                    self.name, self.name
                ),
            )
        })
    }
}

enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
    Mysql(sqlx::Transaction<'static, MySql>),
}

impl Tx {
    async fn end(self, commit: bool) -> Result<(), sqlx::Error> {
        match (self, commit) {
            (Tx::Sqlite(tx), true) => tx.commit().await,
            (Tx::Sqlite(tx), false) => tx.rollback().await,
            (Tx::Postgres(tx), true) => tx.commit().await,
            (Tx::Postgres(tx), false) => tx.rollback().await,
            (Tx::Mysql(tx), true) => tx.commit().await,
            (Tx::Mysql(tx), false) => tx.rollback().await,
        }
    }
}

struct Open {
    datasource: Arc<Datasource>,
    /// `None` while a query runs on it.
    tx: Option<Tx>,
}

/// Everything one request holds in the database.
pub struct RequestScope {
    app: Arc<AppData>,
    held: Mutex<Held>,
    /// A transaction was begun: until then (most requests, always) a query
    /// outside one and the end of the request need not take the lock.
    began: AtomicBool,
}

/// A request's transactions: a handful at most, so a `Vec`.
struct Held {
    open: Vec<(u64, Open)>,
    /// The route's managed transaction, if any.
    managed: Option<u64>,
    next_id: u64,
}

impl Held {
    fn get(&self, id: u64) -> Option<&Open> {
        self.open.iter().find(|(i, _)| *i == id).map(|(_, o)| o)
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Open> {
        self.open.iter_mut().find(|(i, _)| *i == id).map(|(_, o)| o)
    }

    fn remove(&mut self, id: u64) -> Option<Open> {
        let at = self.open.iter().position(|(i, _)| *i == id)?;
        Some(self.open.swap_remove(at).1)
    }
}

impl RequestScope {
    /// An empty scope for a request to `app`.
    pub fn new(app: Arc<AppData>) -> Self {
        RequestScope {
            app,
            held: Mutex::new(Held {
                open: Vec::new(),
                managed: None,
                next_id: 1,
            }),
            began: AtomicBool::new(false),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().expect("scope lock")
    }

    /// The app this scope belongs to.
    pub fn app(&self) -> &str {
        &self.app.name
    }

    /// Begins a transaction on `datasource` (empty: the app's default);
    /// returns its id in this scope.
    ///
    /// # Errors
    /// If the app is not granted the datasource or the database fails.
    pub async fn begin(&self, datasource: &str) -> Result<u64, Failure> {
        let ds = Arc::clone(self.app.resolve(datasource)?);
        let tx = match &ds.pool {
            // IMMEDIATE takes the write lock up front: read-then-write
            // transactions then queue on the busy timeout instead of failing.
            Pool::Sqlite(pool) => Tx::Sqlite(
                pool.begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(|e| super::classify(&e))?,
            ),
            Pool::Postgres(pool) => Tx::Postgres(pool.begin().await.map_err(|e| super::classify(&e))?),
            Pool::Mysql(pool) => Tx::Mysql(pool.begin().await.map_err(|e| super::classify(&e))?),
        };
        let open = Open {
            datasource: ds,
            tx: Some(tx),
        };
        let mut held = self.held();
        let id = held.next_id;
        held.next_id += 1;
        held.open.push((id, open));
        self.began.store(true, Ordering::Release);
        Ok(id)
    }

    /// Commits or rolls back transaction `id`.
    ///
    /// # Errors
    /// If there is no such transaction, it is busy, or the database fails.
    pub async fn end(&self, id: u64, commit: bool) -> Result<(), Failure> {
        let tx = self.take(id)?;
        self.held().remove(id);
        tx.end(commit).await.map_err(|e| super::classify(&e))
    }

    /// Takes transaction `id` out of its slot for one operation.
    fn take(&self, id: u64) -> Result<Tx, Failure> {
        let mut held = self.held();
        let slot = held
            .get_mut(id)
            .ok_or_else(|| (ErrorKind::Other, format!("no open transaction {id}")))?;
        slot.tx.take().ok_or_else(|| {
            (
                ErrorKind::Other,
                "the transaction is busy with another query".to_owned(),
            )
        })
    }

    fn put_back(&self, id: u64, tx: Tx) {
        if let Some(slot) = self.held().get_mut(id) {
            slot.tx = Some(tx);
        }
    }

    /// The transaction a query with `tx` (0: none) on `ds` should use.
    fn transaction_for(&self, tx: u64, ds: &Arc<Datasource>) -> Result<Option<u64>, Failure> {
        if tx == 0 && !self.began.load(Ordering::Acquire) {
            return Ok(None);
        }
        let held = self.held();
        if tx != 0 {
            let slot = held
                .get(tx)
                .ok_or_else(|| (ErrorKind::Other, format!("no open transaction {tx}")))?;
            if !Arc::ptr_eq(&slot.datasource, ds) {
                return Err((
                    ErrorKind::Other,
                    "the transaction belongs to another datasource".to_owned(),
                ));
            }
            return Ok(Some(tx));
        }
        Ok(held
            .managed
            .filter(|&id| held.get(id).is_some_and(|slot| Arc::ptr_eq(&slot.datasource, ds))))
    }

    /// Runs `sql` with `params` on `datasource` (empty: the app's
    /// default), in transaction `tx` (0: the route's managed transaction on
    /// that datasource, if any, else none): rows go to `sink`; a statement
    /// without rows (`Op::Execute`) returns what it did.
    ///
    /// # Errors
    /// If the app is not granted the datasource, the transaction is not
    /// usable, or the database fails.
    pub async fn query(
        &self,
        datasource: &str,
        tx: u64,
        op: Op,
        sql: Arc<str>,
        params: Vec<Value>,
        sink: &mut (impl RowSink + Send),
    ) -> Result<Option<Done>, Failure> {
        // Borrowed, not cloned: a clone would write the datasource's
        // reference count, which every request of every thread shares.
        let ds = self.app.resolve(datasource)?;
        let Some(id) = self.transaction_for(tx, ds)? else {
            return match &ds.pool {
                Pool::Sqlite(pool) => exec::sqlite(pool, op, sql, params, sink).await,
                Pool::Postgres(pool) => exec::postgres(pool, op, sql, params, sink).await,
                Pool::Mysql(pool) => exec::mysql(pool, op, sql, params, sink).await,
            };
        };
        let mut tx = self.take(id)?;
        let result = match &mut tx {
            Tx::Sqlite(tx) => exec::sqlite(&mut **tx, op, sql, params, sink).await,
            Tx::Postgres(tx) => exec::postgres(&mut **tx, op, sql, params, sink).await,
            Tx::Mysql(tx) => exec::mysql(&mut **tx, op, sql, params, sink).await,
        };
        self.put_back(id, tx);
        result
    }

    /// Begins the route's managed transaction on the app's default datasource.
    ///
    /// # Errors
    /// If the app has no datasource or the database cannot begin one.
    pub async fn begin_managed(&self) -> Result<(), Failure> {
        let id = self.begin("").await?;
        self.held().managed = Some(id);
        Ok(())
    }

    /// Commits (or rolls back) the managed transaction.
    ///
    /// # Errors
    /// If the commit fails (the transaction is rolled back).
    pub async fn end_managed(&self, commit: bool) -> Result<(), Failure> {
        let managed = self.held().managed.take();
        match managed {
            Some(id) => self.end(id, commit).await,
            None => Ok(()),
        }
    }

    /// Rolls back transaction `id` if still open (the module dropped it).
    pub fn release(&self, id: u64) {
        // Dropping a sqlx transaction queues its rollback; the connection
        // goes back to the pool.
        let slot = self.held().remove(id);
        drop(slot);
    }

    /// Rolls back whatever the request left open, and logs it as a leak.
    pub async fn close(&self) {
        if !self.began.load(Ordering::Acquire) {
            return;
        }
        let left = {
            let mut held = self.held();
            if held.open.is_empty() {
                return;
            }
            std::mem::take(&mut held.open)
        };
        // Boxed: rare, and it keeps this future (awaited by every request)
        // small.
        Box::pin(self.roll_back_leaked(left)).await;
    }

    async fn roll_back_leaked(&self, left: Vec<(u64, Open)>) {
        tracing::warn!(app = %self.app.name, leaked = left.len(), "request left transactions open; rolled back");
        for (_, open) in left {
            if let Some(tx) = open.tx {
                let _ = tx.end(false).await;
            }
        }
    }
}
