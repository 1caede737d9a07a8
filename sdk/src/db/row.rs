//! Rows of a result, and the conversions between column values and Rust
//! types: by hand with [`Row::get`], or into a whole struct with
//! [`Row::decode`].

use std::sync::Arc;

use serde::Deserialize;

use super::{DbError, DbErrorKind, Value};

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

/// The rows of a result: `rows` rows of `columns.len()` values each.
pub(super) fn rows(columns: Arc<[String]>, rows: usize, values: Vec<Value>) -> impl Iterator<Item = Row> {
    let width = columns.len();
    let set = Arc::new(RowSet { columns, values });
    (0..rows).map(move |r| Row {
        set: Arc::clone(&set),
        at: r * width,
    })
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

    /// The whole row as a `T`, with serde: a struct (or a map) by column
    /// name, a tuple by column position, or a single value from a row of one
    /// column. No `from_row` to write:
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Account {
    ///     id: String,
    ///     balance: i64,
    ///     #[serde(rename = "owner_name")] // the column's name
    ///     owner: Option<String>,         // NULL (or no such column) is None
    /// }
    /// # async fn demo(req: crabcat_sdk::Request) -> crabcat_sdk::Result<()> {
    /// let row = req.db().query("SELECT id, balance, owner_name FROM accounts").fetch_one().await?;
    /// let account: Account = row.decode()?;
    /// // A tuple takes every column, in order:
    /// let (id, balance, owner): (String, i64, Option<String>) = row.decode()?;
    /// # Ok(()) }
    /// ```
    ///
    /// Values convert as in [`get`](Self::get); columns the struct does not
    /// name are ignored, and a field with no column is an error unless it is
    /// an `Option` or has `#[serde(default)]`. The struct may borrow text
    /// from the row (`&'r str`). Two columns of the same name (`a.id, b.id`)
    /// need an alias in the SQL.
    ///
    /// # Errors
    /// [`DbErrorKind::Decode`], naming the column, if a value does not fit
    /// its field or a field has no column.
    pub fn decode<'r, T: Deserialize<'r>>(&'r self) -> Result<T, DbError> {
        T::deserialize(super::decode::RowDeserializer::new(self))
            .map_err(|e| DbError::new(DbErrorKind::Decode, e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        let columns = ["id".to_owned(), "name".to_owned(), "note".to_owned(), "ok".to_owned()];
        let values = vec![Value::Int(7), Value::Text("x".into()), Value::Null, Value::Int(1)];
        rows(columns.into(), 1, values).next().unwrap()
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
        let columns = ["id".to_owned(), "message".to_owned()];
        let values = (1..=3)
            .flat_map(|i| [Value::Int(i), Value::Text(format!("m{i}"))])
            .collect();
        let rows: Vec<Row> = rows(columns.into(), 3, values).collect();
        assert_eq!(rows.len(), 3);
        for (i, row) in (1..=3).zip(&rows) {
            assert_eq!(row.get::<i64>("id").unwrap(), i);
            assert_eq!(row.get::<String>(1).unwrap(), format!("m{i}"));
            assert_eq!(row.values().len(), 2);
        }
        assert_ne!(rows[0], rows[1]);
        assert_eq!(rows[2], rows[2].clone());
    }
}
