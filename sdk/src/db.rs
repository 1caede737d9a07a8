//! The data API: queries with bound parameters, typed rows, transactions.
//!
//! The container owns the connection pools; a module reaches them through
//! the request it is serving: [`Request::db`] for the app's default
//! datasource, [`Request::datasource`] for another one it was granted.
//!
//! Placeholders are `$1`, `$2`, … on every backend (PostgreSQL and SQLite).
//! Parameters are always bound, never spliced into the SQL.
//!
//! ```ignore
//! let row = req.db()
//!     .query("SELECT name, balance FROM accounts WHERE id = $1")
//!     .bind(id)
//!     .fetch_one()
//!     .await?;
//! let name: String = row.get("name")?;
//! let balance: i64 = row.get(1)?;
//! ```
//!
//! Every async call has a `_blocking` twin for [`blocking`](crate::blocking)
//! handlers. Never call a `_blocking` method from an async handler: it
//! would block one of the container's runtime threads until the database
//! answers.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

pub use crate::abi::wire::ErrorKind as DbErrorKind;
pub use crate::abi::wire::Value;
use crate::abi::wire::{self, Reply};
use crate::abi::{DB_BEGIN, DB_COMMIT, DB_EXECUTE, DB_FETCH_ALL, DB_FETCH_OPTIONAL, DB_ROLLBACK};
use crate::error::Error;
use crate::request::Request;

/// A failed database call. The message is for the log: it never contains
/// SQL or parameters, and converting into [`Error`] (with `?`) shows the
/// client only a generic message with a fitting status.
#[derive(Clone, PartialEq, Eq)]
pub struct DbError {
    kind: DbErrorKind,
    message: String,
}

impl DbError {
    pub(crate) fn new(kind: DbErrorKind, message: impl Into<String>) -> Self {
        DbError {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong, to match on.
    pub fn kind(&self) -> DbErrorKind {
        self.kind
    }

    /// The database's (or the container's) message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "database error ({:?}): {}", self.kind, self.message)
    }
}

impl fmt::Debug for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<DbError> for Error {
    /// `NotFound` → 404, unique and other constraint violations → 409,
    /// connection lost and timeouts → 503, the rest → 500. The database's
    /// message goes to the log only.
    fn from(error: DbError) -> Self {
        let (status, public) = match error.kind {
            DbErrorKind::NotFound => (StatusCode::NOT_FOUND, "not found"),
            DbErrorKind::UniqueViolation | DbErrorKind::Constraint => (StatusCode::CONFLICT, "conflict"),
            DbErrorKind::ConnectionLost | DbErrorKind::Timeout => {
                (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
        };
        Error::with_detail(status, public, error.to_string())
    }
}

/// What a statement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// Rows inserted, changed or deleted.
    pub rows_affected: u64,
    /// The rowid of the last inserted row, where the backend reports one
    /// (SQLite; on PostgreSQL use `RETURNING id`).
    pub last_insert_id: Option<i64>,
}

/// One row of a result. The rows of one result share one allocation
/// (cloning a row is cheap; a row kept alive keeps that result alive).
#[derive(Clone)]
pub struct Row {
    set: Arc<RowSet>,
    /// Where this row's values start in `set.values`.
    at: usize,
}

/// The rows of one result.
struct RowSet {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row")
            .field("columns", &self.columns())
            .field("values", &self.values())
            .finish()
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Row) -> bool {
        self.columns() == other.columns() && self.values() == other.values()
    }
}

impl Row {
    /// The values, one per column.
    pub fn values(&self) -> &[Value] {
        &self.set.values[self.at..self.at + self.set.columns.len()]
    }

    /// Column `index` (a position or a name) converted to `T`; use
    /// `Option<T>` for nullable columns.
    ///
    /// # Errors
    /// [`DbErrorKind::Decode`] if there is no such column or the value does
    /// not convert (e.g. `NULL` into a non-`Option`).
    pub fn get<T: FromValue>(&self, index: impl ColumnIndex) -> Result<T, DbError> {
        let i = index
            .position(self.columns())
            .ok_or_else(|| DbError::new(DbErrorKind::Decode, format!("no column {}", index.describe())))?;
        T::from_value(&self.values()[i])
            .map_err(|e| DbError::new(DbErrorKind::Decode, format!("column {}: {e}", index.describe())))
    }

    /// The raw value of column `index`.
    pub fn value(&self, index: impl ColumnIndex) -> Option<&Value> {
        index.position(self.columns()).map(|i| &self.values()[i])
    }

    /// Column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.set.columns
    }
}

/// A column position (`usize`) or name (`&str`).
pub trait ColumnIndex: Copy {
    /// The position among `columns`, if any.
    fn position(self, columns: &[String]) -> Option<usize>;
    /// For error messages.
    fn describe(self) -> String;
}

impl ColumnIndex for usize {
    fn position(self, columns: &[String]) -> Option<usize> {
        (self < columns.len()).then_some(self)
    }
    fn describe(self) -> String {
        format!("#{self}")
    }
}

impl ColumnIndex for &str {
    fn position(self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|c| c == self)
    }
    fn describe(self) -> String {
        format!("{self:?}")
    }
}

/// Conversion from a column value.
pub trait FromValue: Sized {
    /// Converts, or says why not.
    ///
    /// # Errors
    /// A short reason.
    fn from_value(value: &Value) -> Result<Self, String>;
}

fn mismatch(want: &str, got: &Value) -> String {
    format!("expected {want}, found {got:?}")
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(n) => Ok(*n),
            Value::Bool(b) => Ok(i64::from(*b)),
            other => Err(mismatch("an integer", other)),
        }
    }
}

macro_rules! narrow_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, String> {
                let n = i64::from_value(value)?;
                <$t>::try_from(n).map_err(|_| format!("{n} does not fit in {}", stringify!($t)))
            }
        }
    )*};
}
narrow_int!(i32, i16, u32, u64, usize);

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Float(x) => Ok(*x),
            Value::Int(n) => Ok(*n as f64),
            other => Err(mismatch("a number", other)),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => Err(mismatch("text", other)),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => Err(mismatch("a boolean", other)),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bytes(b) => Ok(b.clone()),
            other => Err(mismatch("bytes", other)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(value.clone())
    }
}

macro_rules! into_value {
    ($($t:ty => $v:ident $(as $cast:ty)?),*) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Value {
                Value::$v(x $(as $cast)?.into())
            }
        }
    )*};
}
into_value!(i64 => Int, i32 => Int, i16 => Int, u32 => Int, f64 => Float, f32 => Float, bool => Bool,
    String => Text, &str => Text, Vec<u8> => Bytes, &[u8] => Bytes);

impl From<&String> for Value {
    fn from(x: &String) -> Value {
        Value::Text(x.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(x: Option<T>) -> Value {
        x.map_or(Value::Null, Into::into)
    }
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
            // Room for a few parameters without growing.
            params: Vec::with_capacity(64),
            bound: 0,
        }
    }

    /// Binds the next parameter (`$1`, then `$2`, …).
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        wire::push_value(&mut self.params, &value.into());
        self.bound += 1;
        self
    }

    async fn run(mut self, op: u32) -> Result<Reply, DbError> {
        wire::finish_values(&mut self.params, self.bound);
        call(self.request, op, &self.datasource, self.tx, self.sql, &self.params).await
    }

    /// Every row.
    ///
    /// # Errors
    /// See [`DbErrorKind`].
    pub async fn fetch_all(self) -> Result<Vec<Row>, DbError> {
        Ok(into_rows(self.run(DB_FETCH_ALL).await?)?.collect())
    }

    /// The first row, or `None`.
    ///
    /// # Errors
    /// See [`DbErrorKind`].
    pub async fn fetch_optional(self) -> Result<Option<Row>, DbError> {
        Ok(into_rows(self.run(DB_FETCH_OPTIONAL).await?)?.next())
    }

    /// The first row.
    ///
    /// # Errors
    /// [`DbErrorKind::NotFound`] if there is none; see [`DbErrorKind`].
    pub async fn fetch_one(self) -> Result<Row, DbError> {
        self.fetch_optional()
            .await?
            .ok_or_else(|| DbError::new(DbErrorKind::NotFound, "the query returned no row"))
    }

    /// Runs a statement.
    ///
    /// # Errors
    /// See [`DbErrorKind`].
    pub async fn execute(self) -> Result<Done, DbError> {
        match self.run(DB_EXECUTE).await? {
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

    /// [`execute`](Self::execute) for blocking handlers.
    ///
    /// # Errors
    /// See [`execute`](Self::execute).
    pub fn execute_blocking(self) -> Result<Done, DbError> {
        futures_executor::block_on(self.execute())
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
    let reply = request
        .db_call(op, datasource, tx, sql, params)
        .await
        .map_err(|e| DbError::new(DbErrorKind::Other, e.to_string()))?;
    match reply {
        Reply::Error { kind, message } => Err(DbError::new(kind, message)),
        other => Ok(other),
    }
}

fn into_rows(reply: Reply) -> Result<impl Iterator<Item = Row>, DbError> {
    match reply {
        Reply::Rows { columns, rows, values } => {
            let width = columns.len();
            let set = Arc::new(RowSet { columns, values });
            Ok((0..rows).map(move |r| Row {
                set: Arc::clone(&set),
                at: r * width,
            }))
        }
        other => Err(unexpected(&other)),
    }
}

fn unexpected(reply: &Reply) -> DbError {
    DbError::new(
        DbErrorKind::Other,
        format!("unexpected reply from the container: {reply:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        let reply = Reply::Rows {
            columns: ["id".to_owned(), "name".to_owned(), "note".to_owned(), "ok".to_owned()].into(),
            rows: 1,
            values: vec![Value::Int(7), Value::Text("x".into()), Value::Null, Value::Int(1)],
        };
        into_rows(reply).unwrap().next().unwrap()
    }

    #[test]
    fn typed_getters_by_name_and_position() {
        let r = row();
        assert_eq!(r.get::<i64>("id").unwrap(), 7);
        assert_eq!(r.get::<i32>(0).unwrap(), 7);
        assert_eq!(r.get::<String>("name").unwrap(), "x");
        assert_eq!(r.get::<Option<String>>("note").unwrap(), None);
        assert!(r.get::<bool>("ok").unwrap(), "SQLite booleans are integers");
        assert_eq!(r.get::<String>("note").unwrap_err().kind(), DbErrorKind::Decode);
        assert_eq!(r.get::<i64>("missing").unwrap_err().kind(), DbErrorKind::Decode);
        assert_eq!(r.get::<i64>(9).unwrap_err().kind(), DbErrorKind::Decode);
    }

    #[test]
    fn rows_of_one_result_share_it_and_keep_their_own_values() {
        let reply = Reply::Rows {
            columns: ["id".to_owned(), "message".to_owned()].into(),
            rows: 3,
            values: (1..=3)
                .flat_map(|i| [Value::Int(i), Value::Text(format!("m{i}"))])
                .collect(),
        };
        let rows: Vec<Row> = into_rows(reply).unwrap().collect();
        assert_eq!(rows.len(), 3);
        for (i, row) in (1..=3).zip(&rows) {
            assert_eq!(row.get::<i64>("id").unwrap(), i);
            assert_eq!(row.get::<String>(1).unwrap(), format!("m{i}"));
            assert_eq!(row.values().len(), 2);
        }
        assert_ne!(rows[0], rows[1]);
        assert_eq!(rows[2], rows[2].clone());
    }

    #[test]
    fn db_errors_map_to_statuses() {
        let status = |kind| Error::from(DbError::new(kind, "m")).status().as_u16();
        assert_eq!(status(DbErrorKind::NotFound), 404);
        assert_eq!(status(DbErrorKind::UniqueViolation), 409);
        assert_eq!(status(DbErrorKind::ConnectionLost), 503);
        assert_eq!(status(DbErrorKind::Timeout), 503);
        assert_eq!(status(DbErrorKind::PermissionDenied), 500);
    }
}
