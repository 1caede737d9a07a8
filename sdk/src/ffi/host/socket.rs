//! An owned WebSocket connection.

use core::ptr::NonNull;

use super::bytes;
use crate::abi::{FfiFuture, HostSocket, HostVtable, RawSlice, WS_BINARY, WS_TEXT, WsEvent};

/// An owned WebSocket connection; released to the host (closing it) on drop.
pub(crate) struct SocketHandle {
    pub(super) host: &'static HostVtable,
    pub(super) raw: NonNull<HostSocket>,
}

// SAFETY: the host's socket functions are thread-safe; `recv` takes
// `&mut self`, so one call at a time, as the contract asks.
unsafe impl Send for SocketHandle {}
// SAFETY: see `Send`; the `&self` functions may run concurrently.
unsafe impl Sync for SocketHandle {}

/// What [`SocketHandle::recv`] copied out of a [`WsEvent`].
pub(crate) enum Received {
    Text(String),
    Binary(Vec<u8>),
    Hub { topic: String, payload: Vec<u8> },
    Closed { code: u16, reason: String },
}

impl SocketHandle {
    pub(crate) async fn recv(&mut self) -> Received {
        // SAFETY: the socket is live while `self` is; the host's future
        // holds a reference of its own.
        let event = unsafe { (self.host.ws_recv)(self.raw.as_ptr()) }.await;
        let text = |s| String::from_utf8_lossy(s).into_owned();
        // SAFETY: lent until the next `ws_recv`, which needs `&mut self`
        // again: the copies below are done before it can happen.
        unsafe {
            match event {
                WsEvent::Text(data) => Received::Text(text(bytes(data))),
                WsEvent::Binary(data) => Received::Binary(bytes(data).to_vec()),
                WsEvent::Hub { topic, payload } => Received::Hub {
                    topic: text(bytes(topic)),
                    payload: bytes(payload).to_vec(),
                },
                WsEvent::Closed { code, reason } => Received::Closed {
                    code,
                    reason: text(bytes(reason)),
                },
            }
        }
    }

    /// Queues a message; `false` if the connection is closed.
    pub(crate) fn send(&self, binary: bool, payload: &[u8]) -> FfiFuture<bool> {
        let kind = if binary { WS_BINARY } else { WS_TEXT };
        // SAFETY: the socket is live; the payload is copied before the call
        // returns, and the future holds a reference of the host's own.
        unsafe { (self.host.ws_send)(self.raw.as_ptr(), kind, RawSlice::new(payload)) }
    }

    pub(crate) fn close(&self, code: u16, reason: &str) {
        // SAFETY: the socket is live; the reason is copied.
        unsafe { (self.host.ws_close)(self.raw.as_ptr(), code, RawSlice::from_str(reason)) }
    }

    pub(crate) fn subscribe(&self, topic: &str, flags: u32) -> bool {
        // SAFETY: the socket is live; the topic is copied.
        unsafe { (self.host.hub_subscribe)(self.raw.as_ptr(), RawSlice::from_str(topic), flags) }
    }

    pub(crate) fn unsubscribe(&self, topic: &str) {
        // SAFETY: the socket is live; the topic is copied.
        unsafe { (self.host.hub_unsubscribe)(self.raw.as_ptr(), RawSlice::from_str(topic)) }
    }
}

impl Drop for SocketHandle {
    fn drop(&mut self) {
        // SAFETY: we own the socket and release it exactly once, here.
        unsafe { (self.host.ws_release)(self.raw.as_ptr()) }
    }
}
