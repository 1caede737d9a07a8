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

use std::cell::RefCell;
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

/// A cursor over wire bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len(&mut self) -> Result<usize, WireError> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.len()?;
        self.take(n)
    }

    fn text(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| WireError("text is not UTF-8"))
    }

    fn value(&mut self) -> Result<Value, WireError> {
        Ok(match self.u8()? {
            NULL => Value::Null,
            INT => Value::Int(i64::from_le_bytes(self.array()?)),
            FLOAT => Value::Float(f64::from_le_bytes(self.array()?)),
            TEXT => Value::Text(self.text()?),
            BYTES => Value::Bytes(self.bytes()?.to_vec()),
            BOOL => Value::Bool(self.u8()? != 0),
            _ => return Err(WireError("unknown value tag")),
        })
    }

    /// A count that cannot exceed the bytes left (every item takes at least one).
    fn count(&mut self) -> Result<usize, WireError> {
        let n = self.len()?;
        if n > self.0.len() {
            return Err(WireError("count larger than the message"));
        }
        Ok(n)
    }
}

/// The empty parameter list (what `begin`, `commit` and `rollback` send).
pub const NO_VALUES: &[u8] = &[0; 4];

/// Decodes a parameter list.
///
/// # Errors
/// [`WireError`] on malformed input.
pub fn decode_values(bytes: &[u8]) -> Result<Vec<Value>, WireError> {
    let mut r = Reader(bytes);
    let n = r.count()?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(r.value()?);
    }
    Ok(values)
}

/// The column names encoded in `raw` (`ncols` names), from a small
/// per-thread cache of recent results' names.
fn shared_columns(raw: &[u8], ncols: usize) -> Result<Arc<[String]>, WireError> {
    const KEEP: usize = 16;
    /// Encoded names, and the names.
    type Recent = Vec<(Box<[u8]>, Arc<[String]>)>;
    thread_local! {
        static RECENT: RefCell<Recent> = const { RefCell::new(Vec::new()) };
    }
    RECENT.with_borrow_mut(|recent| {
        if let Some((_, names)) = recent.iter().find(|(key, _)| **key == *raw) {
            return Ok(Arc::clone(names));
        }
        let mut r = Reader(raw);
        let names: Arc<[String]> = (0..ncols).map(|_| r.text()).collect::<Result<_, _>>()?;
        if recent.len() == KEEP {
            recent.remove(0);
        }
        recent.push((raw.into(), Arc::clone(&names)));
        Ok(names)
    })
}

/// Decodes a result. Column names are shared with the previous results
/// that had the same ones (a query has the same columns every time it
/// runs), so decoding a result usually allocates no names.
///
/// # Errors
/// [`WireError`] on malformed input.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, WireError> {
    let mut r = Reader(bytes);
    match r.u8()? {
        ROWS => {
            let ncols = r.count()?;
            let names = r.0;
            for _ in 0..ncols {
                r.bytes()?;
            }
            let columns = shared_columns(&names[..names.len() - r.0.len()], ncols)?;
            let rows = r.count()?;
            let total = rows.checked_mul(ncols).ok_or(WireError("too many values"))?;
            if total > r.0.len() {
                return Err(WireError("count larger than the message"));
            }
            let mut values = Vec::with_capacity(total);
            for _ in 0..total {
                values.push(r.value()?);
            }
            Ok(Reply::Rows { columns, rows, values })
        }
        DONE => {
            let rows_affected = u64::from_le_bytes(r.array()?);
            let has_id = r.u8()? != 0;
            let id = i64::from_le_bytes(r.array()?);
            Ok(Reply::Done {
                rows_affected,
                last_insert_id: has_id.then_some(id),
            })
        }
        ERROR => {
            let kind = ErrorKind::from_u8(r.u8()?);
            let message = r.text()?;
            Ok(Reply::Error { kind, message })
        }
        TX => Ok(Reply::Transaction {
            id: u64::from_le_bytes(r.array()?),
        }),
        _ => Err(WireError("unknown reply kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_values() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Int(-42),
            Value::Float(1.5),
            Value::Text("héllo".into()),
            Value::Bytes(vec![0, 255]),
            Value::Bool(true),
        ]
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(decode_values(&encode_values(&all_values())).unwrap(), all_values());
        let mut pushed = Vec::new();
        for v in all_values() {
            push_value(&mut pushed, &v);
        }
        finish_values(&mut pushed, all_values().len());
        assert_eq!(pushed, encode_values(&all_values()));
        let mut none = Vec::new();
        finish_values(&mut none, 0);
        assert_eq!(none, encode_values(&[]));
        assert_eq!(none, NO_VALUES);
        assert_eq!(decode_values(NO_VALUES).unwrap(), []);
    }

    #[test]
    fn replies_round_trip() {
        let mut out = Vec::new();
        let at = start_rows(&mut out, ["a", "b", "c", "d", "e", "f"].into_iter());
        for _ in 0..2 {
            for v in all_values() {
                put_value(&mut out, &v);
            }
        }
        finish_rows(&mut out, at, 2);
        let Reply::Rows { columns, rows, values } = decode_reply(&out).unwrap() else {
            panic!()
        };
        assert_eq!(columns.len(), 6);
        assert_eq!(rows, 2);
        assert_eq!(values, [all_values(), all_values()].concat());
        assert_eq!(
            decode_reply(&encode_done(3, Some(7))).unwrap(),
            Reply::Done {
                rows_affected: 3,
                last_insert_id: Some(7)
            }
        );
        assert_eq!(
            decode_reply(&encode_error(ErrorKind::Timeout, "slow")).unwrap(),
            Reply::Error {
                kind: ErrorKind::Timeout,
                message: "slow".into()
            }
        );
        assert_eq!(
            decode_reply(&encode_transaction(9)).unwrap(),
            Reply::Transaction { id: 9 }
        );
    }

    #[test]
    fn results_with_the_same_columns_share_their_names() {
        let result = |names: &[&str]| {
            let mut out = Vec::new();
            let at = start_rows(&mut out, names.iter().copied());
            finish_rows(&mut out, at, 0);
            match decode_reply(&out).unwrap() {
                Reply::Rows { columns, .. } => columns,
                other => panic!("{other:?}"),
            }
        };
        let first = result(&["id", "message"]);
        assert_eq!(*first, ["id".to_owned(), "message".to_owned()]);
        assert!(Arc::ptr_eq(&first, &result(&["id", "message"])));
        let other = result(&["id", "messages"]);
        assert_eq!(*other, ["id".to_owned(), "messages".to_owned()]);
        assert!(!Arc::ptr_eq(&first, &other));
        for i in 0..40 {
            result(&[&format!("c{i}")]); // more than the cache keeps
        }
        assert_eq!(*result(&["id", "message"]), *first);
        let mut bad = Vec::new();
        let at = start_rows(&mut bad, ["\u{e9}"].into_iter());
        finish_rows(&mut bad, at, 0);
        bad[9] = 0xff; // the name's first byte: not UTF-8
        assert!(decode_reply(&bad).is_err(), "a bad name is an error, cached or not");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let good = encode_values(&all_values());
        for cut in 0..good.len() {
            assert!(decode_values(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_values(&[255, 255, 255, 255]).is_err());
        assert!(decode_reply(&[9]).is_err());
        assert!(decode_reply(&[]).is_err());
    }
}
