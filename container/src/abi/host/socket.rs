//! A WebSocket connection as the module sees it: whole messages in, whole
//! messages out, hub subscriptions. The protocol itself (frames, pings,
//! limits) is spoken by the server's pump on the other end of the queues.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use crabcat_sdk::abi::{self, FfiFuture, RawSlice, WS_BINARY, WS_TEXT, WsEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{null_argument, slice, text};
use crate::hub::{Hub, HubMessage, Subscriber};

/// Messages the module may have queued for a slow client before `ws_send`
/// waits; client messages the pump may have queued before it stops reading.
pub const QUEUE: usize = 32;

/// A message from the client.
#[derive(Debug)]
pub enum Inbound {
    /// Valid UTF-8 (the pump checked it).
    Text(Bytes),
    Binary(Bytes),
    /// The connection is closed: code and reason.
    Closed(u16, String),
}

/// A message for the client.
#[derive(Debug)]
pub struct Outbound {
    pub binary: bool,
    /// UTF-8 when `binary` is false (checked by `ws_send`).
    pub payload: Bytes,
}

/// Sockets alive now (for `/metrics`).
static OPEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// WebSocket connections accepted and not yet closed and released.
pub fn open_sockets() -> u64 {
    OPEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// The module's side of one connection.
pub struct Socket {
    app: Arc<str>,
    /// Its hub messages for the module (`ws_recv`).
    subscriber: Subscriber,
    /// Its hub messages for the client, sent by the pump (`HUB_FORWARD`).
    forwarder: Subscriber,
    /// Topics, and whether forwarded.
    topics: Mutex<Vec<(String, bool)>>,
    events: tokio::sync::Mutex<Events>,
    outbox: mpsc::Sender<Box<Outbound>>,
    /// The first close asked for (by the module, the host or the client).
    close: Mutex<Option<(u16, String)>>,
    closing: CancellationToken,
}

struct Events {
    inbox: mpsc::Receiver<Box<Inbound>>,
    hub: mpsc::Receiver<HubMessage>,
    /// Once closed, every `ws_recv` says so again.
    closed: Option<(u16, Bytes)>,
    /// What the last `ws_recv` lent to the module: a client's message, or
    /// a hub message (shared with its other subscribers).
    lent: Bytes,
    lent_hub: Option<HubMessage>,
}

/// What the dispatcher gets when the module accepts: the other ends of
/// the socket's queues, for the pump.
pub struct Accepted {
    pub socket: Arc<Socket>,
    /// The subprotocol the module chose; empty for none.
    pub protocol: String,
    /// Queue items are boxed: tokio allocates a 32-slot block per channel
    /// up front, and a pointer slot keeps that small on an idle connection.
    pub inbox: mpsc::Sender<Box<Inbound>>,
    pub outbox: mpsc::Receiver<Box<Outbound>>,
    /// Hub messages of forwarded topics, for the client.
    pub forwarded: mpsc::Receiver<HubMessage>,
}

impl Socket {
    pub(super) fn new(app: Arc<str>, protocol: String) -> (Arc<Socket>, Accepted) {
        let (inbox_tx, inbox) = mpsc::channel(QUEUE);
        let (outbox, outbox_rx) = mpsc::channel(QUEUE);
        let (subscriber, hub) = Subscriber::new();
        let (forwarder, forwarded) = subscriber.sibling();
        OPEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = Arc::new(Socket {
            app,
            subscriber,
            forwarder,
            topics: Mutex::new(Vec::new()),
            events: tokio::sync::Mutex::new(Events {
                inbox,
                hub,
                closed: None,
                lent: Bytes::new(),
                lent_hub: None,
            }),
            outbox,
            close: Mutex::new(None),
            closing: CancellationToken::new(),
        });
        let accepted = Accepted {
            socket: Arc::clone(&socket),
            protocol,
            inbox: inbox_tx,
            outbox: outbox_rx,
            forwarded,
        };
        (socket, accepted)
    }

    /// Asks for the connection to be closed with `code` and `reason`; the
    /// first request wins.
    pub fn request_close(&self, code: u16, reason: &str) {
        let mut close = self.close.lock().unwrap_or_else(PoisonError::into_inner);
        if close.is_none() {
            *close = Some((code, reason.to_owned()));
            self.closing.cancel();
        }
    }

    /// Cancelled once a close was asked for.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// The close asked for, if any.
    pub fn close_request(&self) -> Option<(u16, String)> {
        self.close.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Cancelled when the hub found one of this socket's queues full.
    pub fn too_slow(&self) -> &CancellationToken {
        self.subscriber.too_slow()
    }

    fn subscriber_for(&self, forward: bool) -> &Subscriber {
        match forward {
            true => &self.forwarder,
            false => &self.subscriber,
        }
    }

    fn unsubscribe_all(&self) {
        let topics = std::mem::take(&mut *self.topics.lock().unwrap_or_else(PoisonError::into_inner));
        for (topic, forward) in topics {
            Hub::global().unsubscribe(&self.app, &topic, self.subscriber_for(forward));
        }
    }

    pub(super) fn into_raw(socket: Arc<Socket>) -> *mut abi::HostSocket {
        Arc::into_raw(socket).cast_mut().cast()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The socket behind `socket`, with a reference of the host's own; `None`
/// for null.
///
/// # Safety
/// `socket` must be null or a socket from `ws_accept` not yet released.
unsafe fn socket_arc(socket: *mut abi::HostSocket) -> Option<Arc<Socket>> {
    // SAFETY: by the caller, `socket` is null or came from `Arc::into_raw`
    // and the module's reference keeps it alive.
    unsafe { super::shared(socket.cast_const().cast::<Socket>()) }
}

/// The socket behind `socket`; `None` for null.
///
/// # Safety
/// As [`socket_arc`].
unsafe fn socket_ref<'a>(socket: *mut abi::HostSocket) -> Option<&'a Socket> {
    // SAFETY: by the caller.
    unsafe { socket.cast_const().cast::<Socket>().as_ref() }
}

fn closed_event(code: u16, reason: &Bytes) -> WsEvent {
    WsEvent::Closed {
        code,
        reason: RawSlice::new(reason),
    }
}

host_fn! {
    fn ws_recv(socket: *mut abi::HostSocket) -> FfiFuture<WsEvent> =
        FfiFuture::new(async { WsEvent::Closed { code: 1011, reason: RawSlice::NULL } });
    {
        // SAFETY: the module passes back its socket, or null.
        let Some(socket) = (unsafe { socket_arc(socket) }) else {
            null_argument("ws_recv");
            return FfiFuture::new(async { WsEvent::Closed { code: 1011, reason: RawSlice::NULL } });
        };
        FfiFuture::new(async move {
            let mut events = socket.events.lock().await;
            let events = &mut *events;
            if let Some((code, reason)) = &events.closed {
                return closed_event(*code, reason);
            }
            let got = tokio::select! {
                biased;
                // Once a close is asked for (by anyone), that is the news.
                () = socket.closing.cancelled() => {
                    let (code, reason) = socket.close_request().unwrap_or((1006, String::new()));
                    Some(Inbound::Closed(code, reason))
                }
                message = events.inbox.recv() => message.map(|m| *m),
                Some(message) = events.hub.recv() => {
                    // Lent until the next `ws_recv`: kept in `events`, which
                    // the socket (alive while the module holds it) owns.
                    let message = events.lent_hub.insert(message);
                    return WsEvent::Hub { topic: RawSlice::from_str(&message.topic), payload: RawSlice::new(&message.payload) };
                }
            };
            let binary = match got {
                Some(Inbound::Text(data)) => (data, false),
                Some(Inbound::Binary(data)) => (data, true),
                Some(Inbound::Closed(code, reason)) => {
                    socket.unsubscribe_all();
                    let (code, reason) = events.closed.insert((code, Bytes::from(reason)));
                    return closed_event(*code, reason);
                }
                None => {
                    socket.unsubscribe_all();
                    let (code, reason) = events.closed.insert((1006, Bytes::new()));
                    return closed_event(*code, reason);
                }
            };
            events.lent_hub = None;
            events.lent = binary.0;
            let data = RawSlice::new(&events.lent);
            match binary.1 {
                true => WsEvent::Binary(data),
                false => WsEvent::Text(data),
            }
        })
    }
}

host_fn! {
    fn ws_send(socket: *mut abi::HostSocket, kind: u32, payload: RawSlice) -> FfiFuture<bool> =
        FfiFuture::new(async { false });
    {
        // SAFETY: the module passes back its socket (or null) and a slice
        // valid for the call, copied here.
        let (socket, payload) = unsafe { (socket_arc(socket), slice(payload)) };
        let Some(socket) = socket else {
            null_argument("ws_send");
            return FfiFuture::new(async { false });
        };
        let binary = kind == WS_BINARY;
        let text_ok = kind == WS_TEXT && std::str::from_utf8(payload).is_ok();
        if !binary && !text_ok {
            tracing::error!(app = &*socket.app, kind, "ws_send: not a text or binary message, or text that is not UTF-8");
            return FfiFuture::new(async { false });
        }
        let message = Box::new(Outbound { binary, payload: Bytes::copy_from_slice(payload) });
        FfiFuture::new(async move {
            if socket.closing.is_cancelled() {
                return false;
            }
            tokio::select! {
                sent = socket.outbox.send(message) => sent.is_ok(),
                () = socket.closing.cancelled() => false,
            }
        })
    }
}

host_fn! {
    fn ws_close(socket: *mut abi::HostSocket, code: u16, reason: RawSlice) = ();
    {
        // SAFETY: the module passes back its socket, or null.
        let Some(socket) = (unsafe { socket_ref(socket) }) else {
            return null_argument("ws_close");
        };
        // Codes a peer may not send, and a reason over the frame's room, are
        // replaced rather than refused: the close still happens.
        let code = match code {
            1000 | 1001 | 1002 | 1003 | 1007..=1014 | 3000..=4999 => code,
            _ => 1000,
        };
        let mut reason = text(reason);
        if reason.len() > 123 {
            let mut end = 123;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        socket.request_close(code, &reason);
    }
}

host_fn! {
    fn ws_release(socket: *mut abi::HostSocket) = ();
    {
        if socket.is_null() {
            return null_argument("ws_release");
        }
        // SAFETY: the module's reference, from `Socket::into_raw` in
        // `ws_accept`; released exactly once. The connection itself is
        // closed by the dispatcher when the handler ends.
        let socket = unsafe { Arc::from_raw(socket.cast_const().cast::<Socket>()) };
        socket.unsubscribe_all();
    }
}

host_fn! {
    fn hub_subscribe(socket: *mut abi::HostSocket, topic: RawSlice, flags: u32) -> bool = false;
    {
        // SAFETY: the module passes back its socket, or null.
        let Some(socket) = (unsafe { socket_ref(socket) }) else {
            null_argument("hub_subscribe");
            return false;
        };
        if socket.closing.is_cancelled() {
            return false;
        }
        let (topic, forward) = (text(topic), flags & abi::HUB_FORWARD != 0);
        Hub::global().subscribe(&socket.app, &topic, socket.subscriber_for(forward));
        let mut topics = socket.topics.lock().unwrap_or_else(PoisonError::into_inner);
        if !topics.iter().any(|(t, f)| *t == topic && *f == forward) {
            topics.push((topic, forward));
        }
        true
    }
}

host_fn! {
    fn hub_unsubscribe(socket: *mut abi::HostSocket, topic: RawSlice) = ();
    {
        // SAFETY: the module passes back its socket, or null.
        let Some(socket) = (unsafe { socket_ref(socket) }) else {
            return null_argument("hub_unsubscribe");
        };
        let topic = text(topic);
        let mut topics = socket.topics.lock().unwrap_or_else(PoisonError::into_inner);
        for forward in [false, true] {
            Hub::global().unsubscribe(&socket.app, &topic, socket.subscriber_for(forward));
        }
        topics.retain(|(t, _)| *t != topic);
    }
}

host_fn! {
    fn hub_publish(app: *const abi::HostApp, topic: RawSlice, payload: RawSlice) -> u64 = 0;
    {
        // SAFETY: `app` is the leaked `HostApp` of this module's init, or
        // null; the slices are valid for the call and copied here.
        let (app, topic, payload) = unsafe { (app.cast::<super::HostApp>().as_ref(), text(topic), slice(payload)) };
        let Some(app) = app else {
            null_argument("hub_publish");
            return 0;
        };
        Hub::global().publish(app.name(), &topic, Bytes::copy_from_slice(payload))
    }
}
