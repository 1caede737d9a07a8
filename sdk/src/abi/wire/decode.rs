//! Decoding: a cursor over wire bytes that refuses anything malformed
//! (short, too long, unknown tags, counts larger than the message) with a
//! [`WireError`], never a panic (`sdk/tests/wire_props.rs`).

use std::cell::RefCell;
use std::sync::Arc;

use super::{BOOL, BYTES, DONE, ERROR, ErrorKind, FLOAT, INT, NULL, ROWS, Reply, TEXT, TX, Value, WireError};

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
