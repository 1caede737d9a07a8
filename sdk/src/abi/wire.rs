//! The byte format of database parameters and results crossing the
//! boundary. Both sides use these functions; decoding never panics on bad
//! input, it returns [`WireError`].
//!
//! ```text
//! values:  count:u32, then per value: tag:u8 + payload
//!          NULL=0 | INT=1 i64 | FLOAT=2 f64 | TEXT=3 len:u32 bytes | BYTES=4 len:u32 bytes | BOOL=5 u8
//! result:  ROWS=0   ncols:u32, (len:u32 name)*ncols, nrows:u32, values*nrows (each row: ncols values, no count)
//!          DONE=1   rows_affected:u64, has_last_id:u8, last_id:i64
//!          ERROR=2  kind:u8, len:u32 message
//!          TX=3     id:u64
//! ```
//! Integers are little-endian.

use std::sync::Arc;

/// A value bound to a query or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// Any integer column.
    Int(i64),
    /// Any floating-point column.
    Float(f64),
    /// Text.
    Text(String),
    /// Binary data.
    Bytes(Vec<u8>),
    /// A boolean.
    Bool(bool),
}

/// A [`Value`] that borrows its text or bytes: what the container encodes
/// straight from a database row, without a copy per value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL `NULL`.
    Null,
    /// Any integer column.
    Int(i64),
    /// Any floating-point column.
    Float(f64),
    /// Text.
    Text(&'a str),
    /// Binary data.
    Bytes(&'a [u8]),
    /// A boolean.
    Bool(bool),
}

impl Value {
    /// This value, borrowed.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Int(*n),
            Value::Float(x) => ValueRef::Float(*x),
            Value::Text(s) => ValueRef::Text(s),
            Value::Bytes(b) => ValueRef::Bytes(b),
            Value::Bool(b) => ValueRef::Bool(*b),
        }
    }
}

/// Error kinds, as sent in an `ERROR` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorKind {
    /// `fetch_one` found no row.
    NotFound = 0,
    /// A unique or primary-key constraint was violated.
    UniqueViolation = 1,
    /// Another constraint (foreign key, not null, check) was violated.
    Constraint = 2,
    /// The database cannot be reached or the connection broke.
    ConnectionLost = 3,
    /// No connection within the acquire timeout, a statement timeout, or a busy database.
    Timeout = 4,
    /// The app may not use that datasource.
    PermissionDenied = 5,
    /// A value could not be converted (module side).
    Decode = 6,
    /// Misuse: unknown transaction, transaction already in use, bad SQL.
    Other = 7,
}

impl ErrorKind {
    /// The kind for a wire byte (unknown bytes are `Other`).
    pub fn from_u8(byte: u8) -> ErrorKind {
        match byte {
            0 => ErrorKind::NotFound,
            1 => ErrorKind::UniqueViolation,
            2 => ErrorKind::Constraint,
            3 => ErrorKind::ConnectionLost,
            4 => ErrorKind::Timeout,
            5 => ErrorKind::PermissionDenied,
            6 => ErrorKind::Decode,
            _ => ErrorKind::Other,
        }
    }
}

/// A decoded result.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Column names and rows.
    Rows {
        /// Column names, in order; shared by every result with the same
        /// columns that this thread decoded recently (see [`decode_reply`]).
        columns: Arc<[String]>,
        /// How many rows.
        rows: usize,
        /// Every row's values, row after row, one per column: one
        /// allocation for the whole result rather than one per row.
        values: Vec<Value>,
    },
    /// A statement ran.
    Done {
        /// Rows changed.
        rows_affected: u64,
        /// The id of an inserted row, where the backend reports it (SQLite).
        last_insert_id: Option<i64>,
    },
    /// It failed.
    Error {
        /// What kind of failure.
        kind: ErrorKind,
        /// A message for the log (never SQL or parameters).
        message: String,
    },
    /// A transaction began.
    Transaction {
        /// Its handle.
        id: u64,
    },
}

/// Malformed wire data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed database message: {}", self.0)
    }
}

const NULL: u8 = 0;
const INT: u8 = 1;
const FLOAT: u8 = 2;
const TEXT: u8 = 3;
const BYTES: u8 = 4;
const BOOL: u8 = 5;

const ROWS: u8 = 0;
const DONE: u8 = 1;
const ERROR: u8 = 2;
const TX: u8 = 3;

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends one value.
pub fn put_value(out: &mut Vec<u8>, value: &Value) {
    put_value_ref(out, value.as_ref());
}

/// Appends one borrowed value.
pub fn put_value_ref(out: &mut Vec<u8>, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.push(NULL),
        ValueRef::Int(n) => {
            out.push(INT);
            out.extend_from_slice(&n.to_le_bytes());
        }
        ValueRef::Float(x) => {
            out.push(FLOAT);
            out.extend_from_slice(&x.to_le_bytes());
        }
        ValueRef::Text(s) => {
            out.push(TEXT);
            put_bytes(out, s.as_bytes());
        }
        ValueRef::Bytes(b) => {
            out.push(BYTES);
            put_bytes(out, b);
        }
        ValueRef::Bool(b) => {
            out.push(BOOL);
            out.push(u8::from(b));
        }
    }
}

/// Appends one value to a parameter list being built in `out` (empty to
/// start a new list); [`finish_values`] then writes the count.
pub fn push_value(out: &mut Vec<u8>, value: &Value) {
    if out.is_empty() {
        put_len(out, 0);
    }
    put_value(out, value);
}

/// Writes the count into a list built with [`push_value`] (an empty `out`
/// becomes the empty list).
pub fn finish_values(out: &mut Vec<u8>, count: usize) {
    if out.is_empty() {
        put_len(out, 0);
    }
    out[..4].copy_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_le_bytes());
}

/// Encodes a parameter list.
pub fn encode_values(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + values.len() * 9);
    for value in values {
        push_value(&mut out, value);
    }
    finish_values(&mut out, values.len());
    out
}

/// Starts a `ROWS` result with its column names; append rows with
/// [`put_value`] (one per column) and finish with [`finish_rows`].
pub fn start_rows<'a>(out: &mut Vec<u8>, columns: impl ExactSizeIterator<Item = &'a str>) -> usize {
    out.push(ROWS);
    put_len(out, columns.len());
    for name in columns {
        put_bytes(out, name.as_bytes());
    }
    let count_at = out.len();
    put_len(out, 0);
    count_at
}

/// Writes the row count at the position [`start_rows`] returned.
pub fn finish_rows(out: &mut [u8], count_at: usize, rows: usize) {
    let count = u32::try_from(rows).unwrap_or(u32::MAX).to_le_bytes();
    out[count_at..count_at + 4].copy_from_slice(&count);
}

/// Encodes a `DONE` result.
pub fn encode_done(rows_affected: u64, last_insert_id: Option<i64>) -> Vec<u8> {
    let mut out = vec![DONE];
    out.extend_from_slice(&rows_affected.to_le_bytes());
    out.push(u8::from(last_insert_id.is_some()));
    out.extend_from_slice(&last_insert_id.unwrap_or(0).to_le_bytes());
    out
}

/// Encodes an `ERROR` result.
pub fn encode_error(kind: ErrorKind, message: &str) -> Vec<u8> {
    let mut out = vec![ERROR, kind as u8];
    put_bytes(&mut out, message.as_bytes());
    out
}

/// Encodes a `TX` result.
pub fn encode_transaction(id: u64) -> Vec<u8> {
    let mut out = vec![TX];
    out.extend_from_slice(&id.to_le_bytes());
    out
}

/// The empty parameter list (what `begin`, `commit` and `rollback` send).
pub const NO_VALUES: &[u8] = &[0; 4];

mod decode;

pub use decode::{decode_reply, decode_values};

#[cfg(test)]
mod tests;
