//! Database calls from a module: the wire format in, a typed call into
//! `db`, the wire format out. Rows are encoded as they are decoded, by
//! [`WireRows`], a [`RowSink`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;

use crabcat_sdk::abi::wire::{self, ErrorKind, Value, ValueRef};
use crabcat_sdk::abi::{
    self, DB_BEGIN, DB_COMMIT, DB_EXECUTE, DB_FETCH_ALL, DB_FETCH_OPTIONAL, DB_ROLLBACK, FfiFuture, RawSlice,
};

use super::request::{request_arc, request_ref};
use super::{null_argument, slice, text};
use crate::db::{Failure, Op, RequestScope, RowSink};

/// A database reply that reports a failure of the host itself.
fn db_failure(message: &'static str) -> FfiFuture<abi::BufferHandle> {
    FfiFuture::new(async move { buffer(abi::wire::encode_error(abi::wire::ErrorKind::Other, message)) })
}

/// Hands `reply` to the module as a buffer; `buffer_release` takes it back.
pub(super) fn buffer(reply: Vec<u8>) -> abi::BufferHandle {
    let mut reply = std::mem::ManuallyDrop::new(reply);
    abi::BufferHandle {
        ptr: reply.as_mut_ptr(),
        len: reply.len(),
        capacity: reply.capacity(),
    }
}

host_fn! {
    fn host_db(
        request: *const abi::HostRequest,
        op: u32,
        datasource: RawSlice,
        tx: u64,
        sql: RawSlice,
        params: RawSlice,
    ) -> FfiFuture<abi::BufferHandle> = db_failure("the host failed the database call");
    {
        // SAFETY: the module passes its live request, or null.
        let Some(request) = (unsafe { request_arc(request) }) else {
            null_argument("db");
            return db_failure("null request");
        };
        // SAFETY: the slices are valid for this call, and are copied
        // before it returns.
        let (datasource, sql, params) = unsafe {
            (
                text(datasource),
                shared_sql(slice(sql)),
                abi::wire::decode_values(slice(params)),
            )
        };
        FfiFuture::new(async move {
            let reply = match params {
                Ok(params) => reply(&request.scope, op, &datasource, tx, sql, params).await,
                Err(e) => wire::encode_error(ErrorKind::Other, &e.to_string()),
            };
            buffer(reply)
        })
    }
}

/// The SQL of a query, shared with the recent queries of this thread that
/// had the same text: an app runs the same few statements again and
/// again, and a hit costs a comparison instead of a UTF-8 check, an
/// allocation and a copy (and, later, a free). sqlx clones the `Arc`.
fn shared_sql(bytes: &[u8]) -> Arc<str> {
    /// Enough for the statements of the apps of one container; a miss only
    /// costs the scan.
    const KEEP: usize = 32;
    thread_local! {
        static RECENT: RefCell<VecDeque<Arc<str>>> = const { RefCell::new(VecDeque::new()) };
    }
    RECENT.with_borrow_mut(|recent| {
        if let Some(sql) = recent.iter().find(|sql| sql.as_bytes() == bytes) {
            return Arc::clone(sql);
        }
        // `from_utf8` first: its ASCII fast path beats the lossy decoder.
        let sql: Arc<str> = match std::str::from_utf8(bytes) {
            Ok(sql) => Arc::from(sql),
            Err(_) => Arc::from(String::from_utf8_lossy(bytes)),
        };
        if recent.len() == KEEP {
            recent.pop_back();
        }
        recent.push_front(Arc::clone(&sql));
        sql
    })
}

/// Runs operation `op` of the ABI in `scope`; the reply (or the error) in
/// wire form.
async fn reply(scope: &RequestScope, op: u32, datasource: &str, tx: u64, sql: Arc<str>, params: Vec<Value>) -> Vec<u8> {
    // `begin` and `end` are boxed: their futures (a pool acquire) are
    // kilobytes, and every query's future would be as large, copied into
    // the box the FFI future lives in.
    let result = match op {
        DB_BEGIN => Box::pin(scope.begin(datasource)).await.map(wire::encode_transaction),
        DB_COMMIT | DB_ROLLBACK => Box::pin(scope.end(tx, op == DB_COMMIT))
            .await
            .map(|()| wire::encode_done(0, None)),
        DB_FETCH_ALL => rows(scope, datasource, tx, Op::FetchAll, sql, params).await,
        DB_FETCH_OPTIONAL => rows(scope, datasource, tx, Op::FetchOptional, sql, params).await,
        DB_EXECUTE => {
            let mut none = WireRows::default();
            scope
                .query(datasource, tx, Op::Execute, sql, params, &mut none)
                .await
                .map(|done| {
                    done.map_or_else(
                        || wire::encode_done(0, None),
                        |d| wire::encode_done(d.rows_affected, d.last_insert_id),
                    )
                })
        }
        other => Err((ErrorKind::Other, format!("unknown database operation {other}"))),
    };
    result.unwrap_or_else(|failure| failure_reply(scope, failure))
}

async fn rows(
    scope: &RequestScope,
    datasource: &str,
    tx: u64,
    op: Op,
    sql: Arc<str>,
    params: Vec<Value>,
) -> Result<Vec<u8>, Failure> {
    let mut rows = WireRows::default();
    scope.query(datasource, tx, op, sql, params, &mut rows).await?;
    Ok(rows.out)
}

fn failure_reply(scope: &RequestScope, (kind, message): Failure) -> Vec<u8> {
    if !matches!(kind, ErrorKind::NotFound) {
        tracing::warn!(app = scope.app(), ?kind, "database error: {message}");
    }
    wire::encode_error(kind, &message)
}

thread_local! {
    /// A reply buffer the module gave back, for the next reply of this
    /// thread: the module releases a reply on the thread that polls its
    /// request, where the next query's rows are encoded.
    static SPARE_REPLY: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Keeps a released reply buffer for the next reply, unless it is large.
fn recycle_reply(mut reply: Vec<u8>) {
    if reply.capacity() <= 4096 {
        reply.clear();
        SPARE_REPLY.set(reply);
    }
}

/// Encodes rows into the wire format as they arrive.
#[derive(Default)]
struct WireRows {
    out: Vec<u8>,
    count_at: usize,
}

impl RowSink for WireRows {
    fn columns(&mut self, names: &mut dyn ExactSizeIterator<Item = &str>) {
        if self.out.capacity() == 0 {
            self.out = SPARE_REPLY.take();
        }
        self.out.reserve(64);
        self.count_at = wire::start_rows(&mut self.out, names);
    }

    fn value(&mut self, value: ValueRef<'_>) {
        wire::put_value_ref(&mut self.out, value);
    }

    fn finish(&mut self, rows: usize) {
        wire::finish_rows(&mut self.out, self.count_at, rows);
    }
}

host_fn! {
    fn buffer_release(handle: abi::BufferHandle) = ();
    {
        if !handle.ptr.is_null() {
            // SAFETY: the parts of a `Vec<u8>` forgotten by `buffer`, given
            // back unchanged and once (contract of `buffer_release`).
            recycle_reply(unsafe { Vec::from_raw_parts(handle.ptr, handle.len, handle.capacity) });
        }
    }
}

host_fn! {
    fn tx_release(request: *const abi::HostRequest, tx: u64) = ();
    {
        // SAFETY: the module passes its live request, or null.
        match unsafe { request_ref(request) } {
            Some(r) => r.scope.release(tx),
            None => null_argument("tx_release"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_sql_text_is_shared_and_other_text_is_not() {
        let first = shared_sql(b"SELECT 1");
        let again = shared_sql(b"SELECT 1");
        assert!(Arc::ptr_eq(&first, &again));
        let other = shared_sql(b"SELECT 2");
        assert_eq!(&*other, "SELECT 2");
        assert!(!Arc::ptr_eq(&first, &other));
        // Text that is not UTF-8 is replaced, as before, and never matches
        // the bytes it came from.
        assert_eq!(&*shared_sql(b"SELECT '\xff'"), "SELECT '\u{fffd}'");
    }

    #[test]
    fn the_oldest_sql_text_leaves_a_full_cache() {
        let first = shared_sql(b"SELECT 'first'");
        for i in 0..64 {
            shared_sql(format!("SELECT {i}").as_bytes());
        }
        let later = shared_sql(b"SELECT 'first'");
        assert_eq!(later, first);
        assert!(!Arc::ptr_eq(&first, &later));
    }

    #[test]
    fn a_released_reply_buffer_serves_the_next_reply() {
        let mut reply = Vec::with_capacity(100);
        reply.extend_from_slice(b"old");
        let at = reply.as_ptr();
        recycle_reply(reply);
        let mut rows = WireRows::default();
        rows.columns(&mut ["a"].into_iter());
        assert_eq!(rows.out.as_ptr(), at);
        assert!(!rows.out.starts_with(b"old"));
        // A large one is not kept.
        recycle_reply(Vec::with_capacity(8192));
        assert_eq!(SPARE_REPLY.take().capacity(), 0);
    }
}
