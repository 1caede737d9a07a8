//! The data API: queries with bound parameters, typed rows, transactions.
//!
//! The container owns the connection pools; a module reaches them through
//! the request it is serving: [`Request::db`] for the app's default
//! datasource, [`Request::datasource`] for another one it was granted.
//!
//! Placeholders are `$1`, `$2`, … on every backend (PostgreSQL, SQLite and
//! MySQL/MariaDB, where the container rewrites them to `?`).
//! Parameters are always bound, never spliced into the SQL.
//!
//! Rows decode into your own types with serde (see [`Row::decode`]), or
//! column by column with [`Row::get`]:
//!
//! ```
//! # use crabcat_sdk::Request;
//! #[derive(serde::Deserialize)]
//! struct Account {
//!     name: String,
//!     balance: i64,
//! }
//!
//! # async fn demo(req: Request, id: &str) -> crabcat_sdk::Result<()> {
//! let account: Account = req.db()
//!     .query("SELECT name, balance FROM accounts WHERE id = $1")
//!     .bind(id)
//!     .fetch_one_as()
//!     .await?;
//! let row = req.db().query("SELECT COUNT(*) AS n FROM accounts").fetch_one().await?;
//! let count: i64 = row.get("n")?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! * this file: [`Db`], [`Transaction`], [`Query`] and the calls to the host;
//! * `row`: [`Row`] and the conversions of single values ([`FromValue`],
//!   `Into<Value>`);
//! * `decode`: rows into structs and tuples with serde;
//! * `error`: [`DbError`] and the HTTP status it maps to.
//!
//! Every async call has a `_blocking` twin for [`blocking`](crate::blocking)
//! handlers. Never call a `_blocking` method from an async handler: it
//! would block one of the container's runtime threads until the database
//! answers.

mod decode;
mod error;
mod row;

use std::cell::Cell;
use std::future::Future;

use serde::de::DeserializeOwned;

pub use crate::abi::wire::ErrorKind as DbErrorKind;
pub use crate::abi::wire::Value;
use crate::abi::wire::{self, Reply};
use crate::abi::{DB_BEGIN, DB_COMMIT, DB_EXECUTE, DB_FETCH_ALL, DB_FETCH_OPTIONAL, DB_ROLLBACK};
use crate::ffi::host::DbCall;
use crate::request::Request;
pub use error::DbError;
pub use row::{ColumnIndex, FromValue, Row};

/// What a statement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// Rows inserted, changed or deleted.
    pub rows_affected: u64,
    /// The id of the last inserted row, where the backend reports one
    /// (SQLite's rowid; MySQL's `AUTO_INCREMENT` value, when the statement
    /// generated one; on PostgreSQL use `RETURNING id`).
    pub last_insert_id: Option<i64>,
}

/// A datasource as seen from one request. Cheap; borrows the request.
pub struct Db<'r> {
    request: &'r Request,
    datasource: String,
}

impl<'r> Db<'r> {
    pub(crate) fn new(request: &'r Request, datasource: &str) -> Self {
        Db {
            request,
            datasource: datasource.to_owned(),
        }
    }

    /// A query on this datasource (in the route's managed transaction, if
    /// the route is transactional). The query borrows `sql`.
    pub fn query<'q>(&self, sql: &'q str) -> Query<'q>
    where
        'r: 'q,
    {
        Query::new(self.request, &self.datasource, 0, sql)
    }

    /// Begins a transaction. Dropping it without [`commit`](Transaction::commit)
    /// rolls it back; so does the end of the request.
    ///
    /// # Errors
    /// See [`DbErrorKind`].
    pub async fn begin(&self) -> Result<Transaction<'r>, DbError> {
        let reply = call(self.request, DB_BEGIN, &self.datasource, 0, "", wire::NO_VALUES).await?;
        match reply {
            Reply::Transaction { id } => Ok(Transaction {
                request: self.request,
                datasource: self.datasource.clone(),
                id,
                open: true,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// [`begin`](Self::begin) for blocking handlers.
    ///
    /// # Errors
    /// See [`begin`](Self::begin).
    pub fn begin_blocking(&self) -> Result<Transaction<'r>, DbError> {
        futures_executor::block_on(self.begin())
    }
}

/// An open transaction. Queries made with [`query`](Self::query) run in it.
/// Dropping it without committing rolls it back.
pub struct Transaction<'r> {
    request: &'r Request,
    datasource: String,
    id: u64,
    open: bool,
}

impl<'r> Transaction<'r> {
    /// A query inside this transaction. The query borrows `sql`.
    pub fn query<'q>(&self, sql: &'q str) -> Query<'q>
    where
        'r: 'q,
    {
        Query::new(self.request, &self.datasource, self.id, sql)
    }

    /// Commits.
    ///
    /// # Errors
    /// See [`DbErrorKind`]; the transaction is over either way.
    pub async fn commit(mut self) -> Result<(), DbError> {
        self.open = false;
        call(self.request, DB_COMMIT, &self.datasource, self.id, "", wire::NO_VALUES)
            .await
            .map(drop)
    }

    /// Rolls back.
    ///
    /// # Errors
    /// See [`DbErrorKind`]; the transaction is over either way.
    pub async fn rollback(mut self) -> Result<(), DbError> {
        self.open = false;
        call(
            self.request,
            DB_ROLLBACK,
            &self.datasource,
            self.id,
            "",
            wire::NO_VALUES,
        )
        .await
        .map(drop)
    }

    /// [`commit`](Self::commit) for blocking handlers.
    ///
    /// # Errors
    /// See [`commit`](Self::commit).
    pub fn commit_blocking(self) -> Result<(), DbError> {
        futures_executor::block_on(self.commit())
    }

    /// [`rollback`](Self::rollback) for blocking handlers.
    ///
    /// # Errors
    /// See [`rollback`](Self::rollback).
    pub fn rollback_blocking(self) -> Result<(), DbError> {
        futures_executor::block_on(self.rollback())
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            self.request.release_transaction(self.id);
        }
    }
}

/// A query being built: SQL plus bound parameters.
#[must_use = "a query does nothing until it is fetched or executed"]
pub struct Query<'q> {
    request: &'q Request,
    datasource: String,
    tx: u64,
    sql: &'q str,
    /// Encoded as they are bound (wire format).
    params: Vec<u8>,
    bound: usize,
}

impl<'q> Query<'q> {
    fn new(request: &'q Request, datasource: &str, tx: u64, sql: &'q str) -> Self {
        Query {
            request,
            datasource: datasource.to_owned(),
            tx,
            sql,
            params: params_buffer(),
            bound: 0,
        }
    }

    /// Binds the next parameter (`$1`, then `$2`, …).
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        wire::push_value(&mut self.params, &value.into());
        self.bound += 1;
        self
    }

    /// Starts the call. The host copies the SQL and the parameters at
    /// once, so the query is done with (its buffer serves the next one) and
    /// the future that waits for the reply holds only that call: a few
    /// words, not the query, at every level of a handler's future.
    fn start(mut self, op: u32) -> DbCall {
        wire::finish_values(&mut self.params, self.bound);
        let call = self
            .request
            .db_start(op, &self.datasource, self.tx, self.sql, &self.params);
        recycle(self.params);
        call
    }

    /// Every row.
    ///
    /// # Errors
    /// See [`DbErrorKind`].
    pub fn fetch_all(self) -> impl Future<Output = Result<Vec<Row>, DbError>> + Send + 'q {
        let call = self.start(DB_FETCH_ALL);
        async move { Ok(into_rows(reply(call).await?)?.collect()) }
    }

    /// The first row, or `None`.
    ///
    /// # Errors
    /// See [`DbErrorKind`].
    pub fn fetch_optional(self) -> impl Future<Output = Result<Option<Row>, DbError>> + Send + 'q {
        let call = self.start(DB_FETCH_OPTIONAL);
        async move { first_row(reply(call).await?) }
    }

    /// The first row.
    ///
    /// # Errors
    /// [`DbErrorKind::NotFound`] if there is none; see [`DbErrorKind`].
    pub fn fetch_one(self) -> impl Future<Output = Result<Row, DbError>> + Send + 'q {
        let call = self.start(DB_FETCH_OPTIONAL);
        async move { first_row(reply(call).await?)?.ok_or_else(no_row) }
    }

    /// Every row, each decoded into a `T` (see [`Row::decode`]).
    ///
    /// # Errors
    /// See [`DbErrorKind`]; [`DbErrorKind::Decode`] if a row does not fit `T`.
    pub fn fetch_all_as<T: DeserializeOwned>(self) -> impl Future<Output = Result<Vec<T>, DbError>> + Send + 'q {
        let call = self.start(DB_FETCH_ALL);
        async move { into_rows(reply(call).await?)?.map(|row| row.decode()).collect() }
    }

    /// The first row decoded into a `T`, or `None`.
    ///
    /// # Errors
    /// As [`fetch_all_as`](Self::fetch_all_as).
    pub fn fetch_optional_as<T: DeserializeOwned>(
        self,
    ) -> impl Future<Output = Result<Option<T>, DbError>> + Send + 'q {
        let call = self.start(DB_FETCH_OPTIONAL);
        async move { first_row(reply(call).await?)?.as_ref().map(Row::decode).transpose() }
    }

    /// The first row decoded into a `T`.
    ///
    /// # Errors
    /// [`DbErrorKind::NotFound`] if there is none; as
    /// [`fetch_all_as`](Self::fetch_all_as).
    pub fn fetch_one_as<T: DeserializeOwned>(self) -> impl Future<Output = Result<T, DbError>> + Send + 'q {
        let call = self.start(DB_FETCH_OPTIONAL);
        async move { first_row(reply(call).await?)?.ok_or_else(no_row)?.decode() }
    }

    /// Runs a statement.
    ///
    /// # Errors
    /// See [`DbErrorKind`].
    pub fn execute(self) -> impl Future<Output = Result<Done, DbError>> + Send + 'q {
        let call = self.start(DB_EXECUTE);
        async move {
            match reply(call).await? {
                Reply::Done {
                    rows_affected,
                    last_insert_id,
                } => Ok(Done {
                    rows_affected,
                    last_insert_id,
                }),
                other => Err(unexpected(&other)),
            }
        }
    }

    /// [`fetch_all`](Self::fetch_all) for blocking handlers.
    ///
    /// # Errors
    /// See [`fetch_all`](Self::fetch_all).
    pub fn fetch_all_blocking(self) -> Result<Vec<Row>, DbError> {
        futures_executor::block_on(self.fetch_all())
    }

    /// [`fetch_optional`](Self::fetch_optional) for blocking handlers.
    ///
    /// # Errors
    /// See [`fetch_optional`](Self::fetch_optional).
    pub fn fetch_optional_blocking(self) -> Result<Option<Row>, DbError> {
        futures_executor::block_on(self.fetch_optional())
    }

    /// [`fetch_one`](Self::fetch_one) for blocking handlers.
    ///
    /// # Errors
    /// See [`fetch_one`](Self::fetch_one).
    pub fn fetch_one_blocking(self) -> Result<Row, DbError> {
        futures_executor::block_on(self.fetch_one())
    }

    /// [`fetch_all_as`](Self::fetch_all_as) for blocking handlers.
    ///
    /// # Errors
    /// See [`fetch_all_as`](Self::fetch_all_as).
    pub fn fetch_all_as_blocking<T: DeserializeOwned>(self) -> Result<Vec<T>, DbError> {
        futures_executor::block_on(self.fetch_all_as())
    }

    /// [`fetch_optional_as`](Self::fetch_optional_as) for blocking handlers.
    ///
    /// # Errors
    /// See [`fetch_optional_as`](Self::fetch_optional_as).
    pub fn fetch_optional_as_blocking<T: DeserializeOwned>(self) -> Result<Option<T>, DbError> {
        futures_executor::block_on(self.fetch_optional_as())
    }

    /// [`fetch_one_as`](Self::fetch_one_as) for blocking handlers.
    ///
    /// # Errors
    /// See [`fetch_one_as`](Self::fetch_one_as).
    pub fn fetch_one_as_blocking<T: DeserializeOwned>(self) -> Result<T, DbError> {
        futures_executor::block_on(self.fetch_one_as())
    }

    /// [`execute`](Self::execute) for blocking handlers.
    ///
    /// # Errors
    /// See [`execute`](Self::execute).
    pub fn execute_blocking(self) -> Result<Done, DbError> {
        futures_executor::block_on(self.execute())
    }
}

thread_local! {
    /// A parameter buffer to reuse: the host copies a query's parameters,
    /// so its buffer can serve the next query of this thread (an allocation
    /// and a free fewer per query).
    static SPARE_PARAMS: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An empty parameter buffer, with room for a few parameters.
fn params_buffer() -> Vec<u8> {
    let spare = SPARE_PARAMS.take();
    match spare.capacity() {
        0 => Vec::with_capacity(64),
        _ => spare,
    }
}

/// Keeps `params` for the next query, unless it grew large.
fn recycle(mut params: Vec<u8>) {
    if params.capacity() <= 1024 {
        params.clear();
        SPARE_PARAMS.set(params);
    }
}

async fn call(
    request: &Request,
    op: u32,
    datasource: &str,
    tx: u64,
    sql: &str,
    params: &[u8],
) -> Result<Reply, DbError> {
    reply(request.db_start(op, datasource, tx, sql, params)).await
}

/// The reply of `call`; a reported failure as its error.
async fn reply(call: DbCall) -> Result<Reply, DbError> {
    match call
        .await
        .map_err(|e| DbError::new(DbErrorKind::Other, e.to_string()))?
    {
        Reply::Error { kind, message } => Err(DbError::new(kind, message)),
        other => Ok(other),
    }
}

/// The first row of a result, if any.
fn first_row(reply: Reply) -> Result<Option<Row>, DbError> {
    Ok(into_rows(reply)?.next())
}

fn no_row() -> DbError {
    DbError::new(DbErrorKind::NotFound, "the query returned no row")
}

fn into_rows(reply: Reply) -> Result<impl Iterator<Item = Row>, DbError> {
    match reply {
        Reply::Rows { columns, rows, values } => Ok(row::rows(columns, rows, values)),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(reply: &Reply) -> DbError {
    DbError::new(
        DbErrorKind::Other,
        format!("unexpected reply from the container: {reply:?}"),
    )
}
