//! WebSockets and the container's pub/sub hub.
//!
//! The container speaks the protocol (handshake, framing, pings, fragments,
//! UTF-8 checks, size limits); a handler sees whole messages.
//!
//! ```
//! use crabcat_sdk::prelude::*;
//!
//! struct Chat;
//!
//! impl Chat {
//!     // routes.websocket("/ws/{room}", Self::room)
//!     async fn room(Path(room): Path<String>, mut ws: WebSocket) {
//!         let topic = format!("room:{room}");
//!         ws.subscribe(&topic);
//!         while let Some(message) = ws.recv().await {
//!             match message {
//!                 // From this client: to everyone in the room (this one too).
//!                 Message::Text(text) => {
//!                     hub().publish(&topic, text);
//!                 }
//!                 // From the room: to this client.
//!                 hub_message @ Message::Hub { .. } => {
//!                     if ws.send(hub_message).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!                 Message::Binary(_) => ws.close(1003, "text only"),
//!             }
//!         }
//!     }
//! }
//! ```

use std::sync::Arc;

use crate::abi::ROUTE_WEBSOCKET;
use crate::error::Error;
use crate::extract::{FromRequest, Rejection, private::ViaTakeover};
use crate::ffi::host::{self, Received, SocketHandle};
use crate::request::Request;

/// A message received on, or sent to, a [`WebSocket`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A message published to a [`hub`] topic this socket subscribed to.
    /// Sending it forwards its payload to the client, without a copy: as a
    /// text message if it is UTF-8, else as a binary one.
    Hub {
        /// The topic.
        topic: String,
        /// What was published.
        payload: Vec<u8>,
    },
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Message::Binary(bytes)
    }
}

/// One accepted WebSocket connection: a handler argument (the last one) on
/// a [`Routes::websocket`](crate::Routes::websocket) route. Taking it
/// accepts the handshake.
///
/// The connection lives as long as the handler: when it returns, the
/// container closes the connection (code 1000) if it is still open. If the
/// handler panics, the connection is closed with 1011 and no other is
/// affected. When the app is reloaded or stopped the container closes it
/// with 1012 (1001 when the container shuts down): `recv` returns `None`.
pub struct WebSocket {
    socket: SocketHandle,
    request: Request,
    close: Option<(u16, String)>,
}

impl WebSocket {
    /// The next message, or `None` once the connection is closed (see
    /// [`close_code`](Self::close_code) for how).
    pub async fn recv(&mut self) -> Option<Message> {
        if self.close.is_some() {
            return None;
        }
        match self.socket.recv().await {
            Received::Text(text) => Some(Message::Text(text)),
            Received::Binary(bytes) => Some(Message::Binary(bytes)),
            Received::Hub { topic, payload } => Some(Message::Hub { topic, payload }),
            Received::Closed { code, reason } => {
                self.close = Some((code, reason));
                None
            }
        }
    }

    /// Sends a message. It waits while the connection's outbox is full: a
    /// slow client slows down its sender rather than filling memory.
    ///
    /// # Errors
    /// If the connection is closed.
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), Error> {
        let (binary, payload) = match message.into() {
            Message::Text(text) => (false, text.into_bytes()),
            Message::Binary(bytes) => (true, bytes),
            Message::Hub { payload, .. } => (std::str::from_utf8(&payload).is_err(), payload),
        };
        match self.socket.send(binary, &payload).await {
            true => Ok(()),
            false => Err(Error::new(http::StatusCode::GONE, "the WebSocket connection is closed")),
        }
    }

    /// Closes the connection with `code` (1000 for a normal close) and
    /// `reason` (at most 123 bytes are sent).
    pub fn close(&self, code: u16, reason: &str) {
        self.socket.close(code, reason);
    }

    /// The close code and reason, once [`recv`](Self::recv) returned `None`
    /// (1005 if the client sent no code).
    pub fn close_code(&self) -> Option<(u16, &str)> {
        self.close.as_ref().map(|(code, reason)| (*code, reason.as_str()))
    }

    /// Subscribes this connection to hub `topic`: what is published to it
    /// arrives through [`recv`](Self::recv) as [`Message::Hub`].
    /// Subscriptions end with the connection. `false` if it is closed.
    pub fn subscribe(&self, topic: &str) -> bool {
        self.socket.subscribe(topic, 0)
    }

    /// Subscribes this connection to hub `topic` and has the container send
    /// what is published to it straight to the client (as text if it is
    /// UTF-8, else binary), without waking the handler: the cheap way to
    /// relay a room, when the handler has nothing to add per message.
    /// [`recv`](Self::recv) then sees only what the client sends. A client
    /// too slow for it is disconnected with 1008, as with `subscribe`.
    /// `false` if the connection is closed.
    pub fn forward(&self, topic: &str) -> bool {
        self.socket.subscribe(topic, crate::abi::HUB_FORWARD)
    }

    /// Ends a subscription.
    pub fn unsubscribe(&self, topic: &str) {
        self.socket.unsubscribe(topic);
    }

    /// The handshake request: headers, query, and the database.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket").field("close", &self.close).finish()
    }
}

impl<A> FromRequest<A, ViaTakeover> for WebSocket {
    type Rejection = Rejection;
    const ROUTE_FLAGS: u32 = ROUTE_WEBSOCKET;

    fn from_request(request: Request, _app: &Arc<A>) -> Result<Self, Rejection> {
        match request.handle().ws_accept("") {
            Some(socket) => Ok(WebSocket {
                socket,
                request,
                close: None,
            }),
            None => Err(Rejection::NotWebSocket),
        }
    }
}

/// The container's pub/sub hub for this app: see [`hub`].
#[derive(Debug, Clone, Copy)]
pub struct Hub(());

/// The hub: topics that WebSocket connections
/// [subscribe](WebSocket::subscribe) to, and anything in the app may
/// publish to (a WebSocket handler, an HTTP handler, a spawned task).
///
/// It belongs to the container, so fan-out needs no shared state in the
/// app and keeps working across a reload: the new instance publishes to the
/// same topics, which are the app's own (two apps never see each other's).
///
/// Each subscriber has a bounded queue (256 messages). A subscriber that
/// falls that far behind is disconnected with close code 1008 rather than
/// silently missing messages; its client reconnects.
///
/// In a cluster (several containers sharing a PostgreSQL `cluster.datasource`)
/// a message published on one node reaches the topic's subscribers on every
/// node, at most once: a node that loses its database connection misses what
/// is published until it reconnects.
///
/// # Panics
/// Outside a running module (before `init`).
pub fn hub() -> Hub {
    Hub(())
}

impl Hub {
    /// Publishes `payload` to the subscribers of `topic`; never waits.
    /// Returns how many subscribers of this node it was queued for (in a
    /// cluster, the other nodes' subscribers get it too, and are not counted).
    pub fn publish(&self, topic: &str, payload: impl AsRef<[u8]>) -> usize {
        usize::try_from(host::hub_publish(topic, payload.as_ref())).unwrap_or(usize::MAX)
    }
}
