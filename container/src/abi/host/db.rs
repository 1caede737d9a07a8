//! Database calls from a module: the wire format in, a typed call into
//! `db`, the wire format out. Rows are encoded as they are decoded, by
//! [`WireRows`], a [`RowSink`].

use std::sync::Arc;

use crabcat_sdk::abi::wire::{self, ErrorKind, Value, ValueRef};
use crabcat_sdk::abi::{
    self, DB_BEGIN, DB_COMMIT, DB_EXECUTE, DB_FETCH_ALL, DB_FETCH_OPTIONAL, DB_ROLLBACK, FfiFuture, RawSlice,
};

use super::request::{request_arc, request_ref};
use super::{borrowed_text, null_argument, slice, text};
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
                // Shared: sqlx clones the SQL it runs (a copy, for a `String`).
                Arc::<str>::from(borrowed_text(sql)),
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

/// Encodes rows into the wire format as they arrive.
#[derive(Default)]
struct WireRows {
    out: Vec<u8>,
    count_at: usize,
}

impl RowSink for WireRows {
    fn columns(&mut self, names: &mut dyn ExactSizeIterator<Item = &str>) {
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
            drop(unsafe { Vec::from_raw_parts(handle.ptr, handle.len, handle.capacity) });
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
