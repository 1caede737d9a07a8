//! Running one module query on SQLite, PostgreSQL or MySQL: bind the values,
//! execute, hand each row's values to a [`RowSink`] as they are decoded.

use std::sync::Arc;

use crabcat_sdk::abi::wire::{ErrorKind, Value, ValueRef};
use sqlx::mysql::MySqlRow;
use sqlx::postgres::{PgArgumentBuffer, PgRow, PgTypeInfo};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Column, Decode, MySql, Postgres, Row, Sqlite, TypeInfo, ValueRef as _};

use super::error::classify;
use super::placeholders;

/// What to do with the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Every row.
    FetchAll,
    /// At most one row.
    FetchOptional,
    /// No rows: rows affected.
    Execute,
}

/// A failure to report to the module: what kind, and a message.
pub type Failure = (ErrorKind, String);

/// Where a query's rows go, value by value, straight from the database's
/// own row buffers (the ABI encodes them into the module's reply, with no
/// rows built in between).
pub trait RowSink {
    /// The column names, once, before any value (none without rows).
    fn columns(&mut self, names: &mut dyn ExactSizeIterator<Item = &str>);
    /// The next value, row by row, column by column.
    fn value(&mut self, value: ValueRef<'_>);
    /// After the last value: how many rows there were.
    fn finish(&mut self, rows: usize);
}

/// What a statement without rows did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// Rows inserted, updated or deleted.
    pub rows_affected: u64,
    /// SQLite's rowid of the last insert, or MySQL's `LAST_INSERT_ID()`
    /// of the statement (when it generated one).
    pub last_insert_id: Option<i64>,
}

fn db_failure(error: sqlx::Error) -> Failure {
    classify(&error)
}

/// A NULL whose type PostgreSQL infers from where it is used (parameter
/// type OID 0, "unspecified"), so `Option::None` works for any column.
struct UntypedNull;

impl sqlx::Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(&self, _: &mut PgArgumentBuffer) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

/// Binds `params` to `sql` and runs it per `op`: rows into the sink, or
/// what the statement did.
macro_rules! run {
    ($db:ty, $executor:expr, $op:expr, $sql:expr, $params:expr, $sink:expr, $null:expr, $decode:path, $last_id:expr) => {{
        let mut query = sqlx::query::<$db>(AssertSqlSafe($sql));
        for value in $params {
            query = match value {
                Value::Null => query.bind($null),
                Value::Int(n) => query.bind(n),
                Value::Float(x) => query.bind(x),
                Value::Text(s) => query.bind(s),
                Value::Bytes(b) => query.bind(b),
                Value::Bool(b) => query.bind(b),
            };
        }
        match $op {
            Op::FetchAll => {
                let rows = query.fetch_all($executor).await.map_err(db_failure)?;
                sink_rows(&rows, $decode, $sink).map(|()| None)
            }
            Op::FetchOptional => {
                let row = query.fetch_optional($executor).await.map_err(db_failure)?;
                sink_rows(row.as_slice(), $decode, $sink).map(|()| None)
            }
            Op::Execute => {
                let done = query.execute($executor).await.map_err(db_failure)?;
                let last_id: fn(&_) -> Option<i64> = $last_id;
                Ok(Some(Done {
                    rows_affected: done.rows_affected(),
                    last_insert_id: last_id(&done),
                }))
            }
        }
    }};
}

/// Runs on SQLite: rows go to `sink`; a statement without rows returns
/// what it did.
pub async fn sqlite<'e>(
    executor: impl sqlx::Executor<'e, Database = Sqlite>,
    op: Op,
    sql: Arc<str>,
    params: Vec<Value>,
    sink: &mut (impl RowSink + Send),
) -> Result<Option<Done>, Failure> {
    run!(
        Sqlite,
        executor,
        op,
        sql,
        params,
        sink,
        None::<i64>,
        sqlite_value,
        |d: &sqlx::sqlite::SqliteQueryResult| { Some(d.last_insert_rowid()) }
    )
}

/// Runs on PostgreSQL, as [`sqlite`].
pub async fn postgres<'e>(
    executor: impl sqlx::Executor<'e, Database = Postgres>,
    op: Op,
    sql: Arc<str>,
    params: Vec<Value>,
    sink: &mut (impl RowSink + Send),
) -> Result<Option<Done>, Failure> {
    run!(
        Postgres,
        executor,
        op,
        sql,
        params,
        sink,
        UntypedNull,
        postgres_value,
        |_: &sqlx::postgres::PgQueryResult| None
    )
}

/// Runs on MySQL/MariaDB, as [`sqlite`], with the `$N` placeholders
/// rewritten to `?` and the values ordered to match.
pub async fn mysql<'e>(
    executor: impl sqlx::Executor<'e, Database = MySql>,
    op: Op,
    sql: Arc<str>,
    params: Vec<Value>,
    sink: &mut (impl RowSink + Send),
) -> Result<Option<Done>, Failure> {
    let (sql, params) = match placeholders::rewrite(&sql).map_err(|e| (ErrorKind::Other, e))? {
        Some(rewritten) => (Arc::from(rewritten.sql), ordered(params, &rewritten.order)?),
        None => (sql, params),
    };
    run!(
        MySql,
        executor,
        op,
        sql,
        params,
        sink,
        None::<i64>,
        mysql_value,
        |d: &sqlx::mysql::MySqlQueryResult| { i64::try_from(d.last_insert_id()).ok().filter(|&id| id != 0) }
    )
}

/// The values for the `?` placeholders, in `order` (indexes into `params`).
fn ordered(params: Vec<Value>, order: &[usize]) -> Result<Vec<Value>, Failure> {
    if let Some(&missing) = order.iter().find(|&&i| i >= params.len()) {
        let message = format!("the SQL uses ${} but {} values were bound", missing + 1, params.len());
        return Err((ErrorKind::Other, message));
    }
    if order.iter().copied().eq(0..params.len()) {
        return Ok(params);
    }
    Ok(order.iter().map(|&i| params[i].clone()).collect())
}

fn sink_rows<R: Row>(
    rows: &[R],
    decode: for<'r> fn(&'r R, usize) -> Result<ValueRef<'r>, String>,
    sink: &mut impl RowSink,
) -> Result<(), Failure> {
    let columns = rows.first().map(|r| r.columns()).unwrap_or_default();
    sink.columns(&mut columns.iter().map(|c| c.name()));
    for row in rows {
        for (i, column) in columns.iter().enumerate() {
            let value = decode(row, i).map_err(|e| (ErrorKind::Decode, format!("column {}: {e}", column.name())))?;
            sink.value(value);
        }
    }
    sink.finish(rows.len());
    Ok(())
}

fn sqlite_value(row: &SqliteRow, i: usize) -> Result<ValueRef<'_>, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(ValueRef::Null);
    }
    // The storage class of the value itself (SQLite types are per value),
    // decoded from the raw value already in hand.
    let error = |e: sqlx::error::BoxDynError| e.to_string();
    Ok(match raw.type_info().name() {
        "INTEGER" | "BOOLEAN" | "INT8" | "BIGINT" => ValueRef::Int(Decode::<Sqlite>::decode(raw).map_err(error)?),
        "REAL" | "NUMERIC" => ValueRef::Float(Decode::<Sqlite>::decode(raw).map_err(error)?),
        "BLOB" => ValueRef::Bytes(Decode::<Sqlite>::decode(raw).map_err(error)?),
        _ => ValueRef::Text(Decode::<Sqlite>::decode(raw).map_err(error)?),
    })
}

fn postgres_value(row: &PgRow, i: usize) -> Result<ValueRef<'_>, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(ValueRef::Null);
    }
    // Decoded from the raw value in hand, by the column's own type (so no
    // second lookup and compatibility check, as `try_get` would do).
    let error = |e: sqlx::error::BoxDynError| e.to_string();
    Ok(match row.column(i).type_info().name() {
        "INT2" => ValueRef::Int(<i16 as Decode<Postgres>>::decode(raw).map_err(error)?.into()),
        "INT4" => ValueRef::Int(<i32 as Decode<Postgres>>::decode(raw).map_err(error)?.into()),
        "INT8" => ValueRef::Int(Decode::<Postgres>::decode(raw).map_err(error)?),
        "FLOAT4" => ValueRef::Float(<f32 as Decode<Postgres>>::decode(raw).map_err(error)?.into()),
        "FLOAT8" => ValueRef::Float(Decode::<Postgres>::decode(raw).map_err(error)?),
        "BOOL" => ValueRef::Bool(Decode::<Postgres>::decode(raw).map_err(error)?),
        "BYTEA" => ValueRef::Bytes(Decode::<Postgres>::decode(raw).map_err(error)?),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "UNKNOWN" => {
            ValueRef::Text(Decode::<Postgres>::decode(raw).map_err(error)?)
        }
        other => {
            return Err(format!(
                "type {other} is not supported; cast it in SQL (e.g. col::text or CAST(col AS BIGINT))"
            ));
        }
    })
}

fn mysql_value(row: &MySqlRow, i: usize) -> Result<ValueRef<'_>, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(ValueRef::Null);
    }
    let error = |e: sqlx::error::BoxDynError| e.to_string();
    let info = row.column(i).type_info();
    // Character data by its collation (not `binary`): text, else bytes.
    if <str as sqlx::Type<MySql>>::compatible(info) {
        return Ok(ValueRef::Text(Decode::<MySql>::decode(raw).map_err(error)?));
    }
    if <[u8] as sqlx::Type<MySql>>::compatible(info) {
        return Ok(ValueRef::Bytes(Decode::<MySql>::decode(raw).map_err(error)?));
    }
    Ok(match info.name() {
        // TINYINT(1), what BOOLEAN is an alias of: 0 and 1 are booleans,
        // any other value stays the integer it is.
        "BOOLEAN" => match <i64 as Decode<MySql>>::decode(raw).map_err(error)? {
            n @ (0 | 1) => ValueRef::Bool(n == 1),
            n => ValueRef::Int(n),
        },
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
            ValueRef::Int(Decode::<MySql>::decode(raw).map_err(error)?)
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" | "BIGINT UNSIGNED"
        | "BIT" => {
            let n: u64 = Decode::<MySql>::decode(raw).map_err(error)?;
            ValueRef::Int(i64::try_from(n).map_err(|_| {
                format!("{n} does not fit a signed 64-bit integer; cast it in SQL (e.g. CAST(col AS CHAR))")
            })?)
        }
        "FLOAT" | "DOUBLE" => ValueRef::Float(Decode::<MySql>::decode(raw).map_err(error)?),
        other => {
            return Err(format!(
                "type {other} is not supported; cast it in SQL (e.g. CAST(col AS CHAR), CAST(col AS DOUBLE) \
                 or UNIX_TIMESTAMP(col))"
            ));
        }
    })
}
