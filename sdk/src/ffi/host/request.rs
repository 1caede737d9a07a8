//! An owned host request: its parts, headers and parameters, its body as
//! it arrives, its database calls, its session, and its WebSocket handshake.

use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, ready};
use std::future::Future;

use super::{SocketHandle, bytes};
use crate::abi::wire::{Reply, WireError, decode_reply};
use crate::abi::{BodyChunk, BufferHandle, FfiFuture, HostRequest, HostVtable, RawSlice};

/// A database call under way: the host's future of its reply, decoded.
pub(crate) struct DbCall {
    host: &'static HostVtable,
    reply: FfiFuture<BufferHandle>,
}

impl Future for DbCall {
    type Output = Result<Reply, WireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let buffer = ready!(Pin::new(&mut self.reply).poll(cx));
        if buffer.ptr.is_null() {
            return Poll::Ready(Err(WireError("the container returned no reply")));
        }
        // SAFETY: a reply buffer the host handed us, valid for `len` bytes
        // until released; decoding copies, so nothing borrows it after.
        let reply = decode_reply(unsafe { core::slice::from_raw_parts(buffer.ptr, buffer.len) });
        // SAFETY: released exactly once, unchanged.
        unsafe { (self.host.buffer_release)(buffer) };
        Poll::Ready(reply)
    }
}

/// An owned host request; released to the host on drop.
pub(crate) struct RequestHandle {
    host: &'static HostVtable,
    raw: NonNull<HostRequest>,
}

// SAFETY: the host request is immutable after creation and the host's
// accessor functions are thread-safe, so it may be shared and moved.
unsafe impl Send for RequestHandle {}
// SAFETY: see `Send`.
unsafe impl Sync for RequestHandle {}

impl RequestHandle {
    /// # Safety
    /// `raw` must be a request the host handed to this module and not yet
    /// released; the handle takes ownership of it.
    pub(crate) unsafe fn from_raw(host: &'static HostVtable, raw: *mut HostRequest) -> Option<Self> {
        NonNull::new(raw).map(|raw| RequestHandle { host, raw })
    }

    pub(crate) fn part(&self, part: u32) -> &[u8] {
        // SAFETY: the request is live while `self` is; the slice stays valid
        // until release, which only `drop` does, so borrowing `self` suffices.
        unsafe { bytes((self.host.request_part)(self.raw.as_ptr(), part)) }
    }

    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        // SAFETY: as in `part`; `name` is borrowed for the call only.
        let value = unsafe { (self.host.request_header)(self.raw.as_ptr(), RawSlice::from_str(name)) };
        // SAFETY: as in `part`.
        (!value.is_null()).then(|| unsafe { bytes(value) })
    }

    /// Starts a database operation for this request. The host copies
    /// `datasource`, `sql` and `params` before this returns, so the call
    /// borrows nothing: its future is small, and runs nothing until polled.
    pub(crate) fn db_start(&self, op: u32, datasource: &str, tx: u64, sql: &str, params: &[u8]) -> DbCall {
        // SAFETY: the request is live while `self` is borrowed, and the
        // host's future holds a reference of its own; the host copies
        // `datasource`, `sql` and `params` before returning.
        let reply = unsafe {
            (self.host.db)(
                self.raw.as_ptr(),
                op,
                RawSlice::from_str(datasource),
                tx,
                RawSlice::from_str(sql),
                RawSlice::new(params),
            )
        };
        DbCall { host: self.host, reply }
    }

    /// The next chunk of the request body: `Ok(None)` at its end, `Err`
    /// with the status the client should get (and why) if it cannot be read.
    pub(crate) async fn body_next(&self) -> Result<Option<Vec<u8>>, (u16, String)> {
        // SAFETY: the request is live while `self` is borrowed, and the
        // host's future holds a reference of its own.
        let chunk = unsafe { (self.host.request_body_next)(self.raw.as_ptr()) }.await;
        // SAFETY: the data is lent until the next call on this request,
        // which cannot happen before this copy (we hold `&self` until then
        // and the next call needs this one to have returned).
        unsafe {
            match chunk {
                BodyChunk::Data(data) => Ok(Some(bytes(data).to_vec())),
                BodyChunk::End => Ok(None),
                BodyChunk::Error(message) => Err(status_message(bytes(message))),
            }
        }
    }

    /// Accepts the WebSocket handshake of this request.
    pub(crate) fn ws_accept(&self, protocol: &str) -> Option<SocketHandle> {
        // SAFETY: the request is live; `protocol` is copied by the host.
        let raw = unsafe { (self.host.ws_accept)(self.raw.as_ptr(), RawSlice::from_str(protocol)) };
        NonNull::new(raw).map(|raw| SocketHandle { host: self.host, raw })
    }

    /// Loads this request's session; a `SESSION_*` code.
    pub(crate) async fn session_load(&self) -> u32 {
        // SAFETY: the request is live while `self` is borrowed, and the
        // host's future holds a reference of its own.
        unsafe { (self.host.session_load)(self.raw.as_ptr()) }.await
    }

    /// Attribute `name` of the loaded session, copied out.
    pub(crate) fn session_get(&self, name: &str) -> Option<Vec<u8>> {
        // SAFETY: the request is live; `name` is borrowed for the call.
        let buffer = unsafe { (self.host.session_get)(self.raw.as_ptr(), RawSlice::from_str(name)) };
        if buffer.ptr.is_null() {
            return None;
        }
        // SAFETY: a buffer the host handed us, valid for `len` bytes until
        // released; copied before the release.
        let value = unsafe { core::slice::from_raw_parts(buffer.ptr, buffer.len) }.to_vec();
        // SAFETY: released exactly once, unchanged.
        unsafe { (self.host.buffer_release)(buffer) };
        Some(value)
    }

    /// Sets (`Some`) or removes (`None`) attribute `name`; a `SESSION_*` code.
    pub(crate) fn session_set(&self, name: &str, value: Option<&[u8]>) -> u32 {
        let value = value.map_or(RawSlice::NULL, RawSlice::new);
        // SAFETY: the request is live; the host copies both slices.
        unsafe { (self.host.session_set)(self.raw.as_ptr(), RawSlice::from_str(name), value) }
    }

    /// Renews (`true`) or invalidates the loaded session; a `SESSION_*` code.
    pub(crate) fn session_end(&self, renew: bool) -> u32 {
        let call = if renew {
            self.host.session_renew
        } else {
            self.host.session_invalidate
        };
        // SAFETY: the request is live; the call does not block.
        unsafe { call(self.raw.as_ptr()) }
    }

    /// Rolls back transaction `tx` if still open (a dropped transaction).
    pub(crate) fn release_transaction(&self, tx: u64) {
        // SAFETY: the request is live; the call does not block.
        unsafe { (self.host.tx_release)(self.raw.as_ptr(), tx) }
    }

    pub(crate) fn header_at(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.pair_at(self.host.request_header_at, index)
    }

    pub(crate) fn param_at(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.pair_at(self.host.request_param_at, index)
    }

    fn pair_at(
        &self,
        getter: unsafe extern "C" fn(*const HostRequest, usize, *mut RawSlice, *mut RawSlice) -> bool,
        index: usize,
    ) -> Option<(&[u8], &[u8])> {
        let (mut name, mut value) = (RawSlice::NULL, RawSlice::NULL);
        // SAFETY: the request is live; the out-pointers are valid locals.
        let found = unsafe { getter(self.raw.as_ptr(), index, &mut name, &mut value) };
        // SAFETY: as in `part`.
        found.then(|| unsafe { (bytes(name), bytes(value)) })
    }
}

impl Drop for RequestHandle {
    fn drop(&mut self) {
        // SAFETY: we own the request and release it exactly once, here.
        unsafe { (self.host.request_release)(self.raw.as_ptr()) }
    }
}

/// Splits a host error message that starts with an HTTP status ("413 …").
fn status_message(message: &[u8]) -> (u16, String) {
    let message = String::from_utf8_lossy(message);
    match message.split_once(' ').map(|(code, rest)| (code.parse::<u16>(), rest)) {
        Some((Ok(code), rest)) if (400..600).contains(&code) => (code, rest.to_owned()),
        _ => (400, message.into_owned()),
    }
}
