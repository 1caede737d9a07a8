//! WebSocket routes: the handshake, the wait for the module to accept, and
//! the pump that speaks the protocol between the client and the socket's
//! queues (tokio-tungstenite does the framing).
//!
//! Close codes the container sends: 1000 when the handler returns, 1011
//! when it panics or fails, 1009 for a message over
//! `server.websocket_max_message_bytes`, 1007 for text that is not UTF-8,
//! 1002 for other protocol errors, 1008 for a subscriber too slow for its
//! hub topics, 1012 when the app is reloaded, 1001 when it is stopped or the
//! container shuts down.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::header::{
    CONNECTION, HOST, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::dispatch::Reject;
use crate::abi::{Accepted, CallError, HostRequest, HostResponse, Inbound, Outbound, Upgrade};
use crate::lifecycle::{AppSlot, Farewell, Lease, Permit, ServeError, Target};

/// The protocol settings of `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_message_bytes: usize,
    /// `None`: no pings.
    pub ping_interval: Option<Duration>,
}

/// How long a closing connection waits for the client's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks the handshake: a WebSocket upgrade (else 426) from an allowed
/// origin (else 403). Returns the `Sec-WebSocket-Key`.
pub fn check_handshake(slot: &AppSlot, headers: &HeaderMap) -> Result<HeaderValue, Reject> {
    let has_token = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let version_13 = headers.get("sec-websocket-version").is_some_and(|v| v == "13");
    let key = headers.get(SEC_WEBSOCKET_KEY);
    let (true, true, true, Some(key)) = (
        has_token(CONNECTION, "upgrade"),
        has_token(UPGRADE, "websocket"),
        version_13,
        key,
    ) else {
        return Err(Reject::UpgradeRequired);
    };
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if !slot.limits.allows_origin(text(ORIGIN), text(HOST)) {
        return Err(Reject::OriginForbidden);
    }
    Ok(key.clone())
}

/// Copies `uri` and `headers` into memory of their own, so that they no
/// longer share (and keep alive) the connection's read buffer.
pub fn detach(uri: &mut http::Uri, headers: &mut HeaderMap) {
    if let Ok(owned) = http::Uri::from_maybe_shared(Bytes::copy_from_slice(uri.to_string().as_bytes())) {
        *uri = owned;
    }
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.append(name.clone(), value);
        }
    }
    *headers = owned;
}

/// Runs a WebSocket route: calls the handler in a task of its own, and
/// answers `101 Switching Protocols` as soon as it accepts (then the pump
/// takes the connection over), or with its HTTP response if it does not.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    slot: &AppSlot,
    lease: Lease,
    permit: Permit,
    target: Target,
    mut request: Arc<HostRequest>,
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    settings: Settings,
) -> Result<HostResponse, Reject> {
    let (upgrade, accepted) = Upgrade::new(Arc::clone(&slot.name));
    HostRequest::unshared(&mut request).upgrade = Some(Box::new(upgrade));
    let farewell = lease.farewell().clone();
    // If this request stops waiting (a timeout) before the module accepted,
    // the handler goes with it.
    let mut handler = AbortOnDrop {
        handle: tokio::spawn(run_handler(lease, target, request)),
        armed: true,
    };
    tokio::select! {
        biased;
        Ok(accepted) = accepted => {
            drop(permit); // a connection is not a request: it does not hold the quota
            handler.armed = false; // it runs as long as the connection
            let protocol = accepted.protocol.clone();
            tokio::spawn(pump_upgraded(on_upgrade, accepted, farewell, settings, Arc::clone(&slot.name)));
            Ok(switching_protocols(&key, &protocol))
        }
        joined = &mut handler.handle => match joined {
            Ok(result) => result.map_err(Reject::Failed),
            Err(e) => Err(Reject::Failed(ServeError::Blocking(e))),
        },
    }
}

/// The handler's whole run: the module's future, then the close code that
/// its outcome calls for, then the request's database scope.
async fn run_handler(lease: Lease, target: Target, request: Arc<HostRequest>) -> Result<HostResponse, ServeError> {
    let mut response = lease.response();
    let result = lease
        .call(target, Arc::clone(&request), &mut response)
        .await
        .map(|()| response);
    if let Some(socket) = request.upgrade.as_deref().and_then(Upgrade::socket) {
        match &result {
            Ok(_) => socket.request_close(1000, ""),
            Err(ServeError::Call(CallError::Panicked)) => socket.request_close(1011, "the handler panicked"),
            Err(ServeError::Cancelled) => socket.request_close(lease.farewell().code(), "the app is going away"),
            Err(_) => socket.request_close(1011, "the handler failed"),
        }
    }
    request.scope.close().await;
    result
}

struct AbortOnDrop<T> {
    handle: tokio::task::JoinHandle<T>,
    armed: bool,
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if self.armed {
            self.handle.abort();
        }
    }
}

fn switching_protocols(key: &HeaderValue, protocol: &str) -> HostResponse {
    let mut response = HostResponse::switching_protocols();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let headers = &mut response.headers;
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Ok(protocol) = HeaderValue::from_str(protocol)
        && !protocol.is_empty()
    {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}

/// The answer to a request on a WebSocket route that is not a handshake.
pub fn upgrade_required() -> Response {
    let mut response = Response::new(Body::from("this is a WebSocket endpoint\n"));
    *response.status_mut() = StatusCode::UPGRADE_REQUIRED;
    response
        .headers_mut()
        .insert(UPGRADE, HeaderValue::from_static("websocket"));
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    response
}

async fn pump_upgraded(
    on_upgrade: OnUpgrade,
    accepted: Accepted,
    farewell: Farewell,
    settings: Settings,
    app: Arc<str>,
) {
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(app = &*app, "WebSocket upgrade failed: {e}");
            accepted.socket.request_close(1006, "");
            return;
        }
    };
    let config = WebSocketConfig::default()
        // 4 KiB instead of 128 KiB: an idle connection costs a few KiB.
        .read_buffer_size(4096)
        .max_message_size(Some(settings.max_message_bytes))
        .max_frame_size(Some(settings.max_message_bytes));
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    pump(ws, accepted, farewell, settings).await;
}

/// How a connection ended.
enum End {
    /// We close, with this code and reason.
    Close(u16, String),
    /// The client closed (tungstenite answers it).
    Peer,
    /// The connection broke.
    Lost,
}

async fn pump<S>(mut ws: WebSocketStream<S>, accepted: Accepted, farewell: Farewell, settings: Settings)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Accepted {
        socket,
        inbox,
        mut outbox,
        mut forwarded,
        ..
    } = accepted;
    let mut ping = settings.ping_interval.map(|every| {
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping
    });
    let mut room = None;
    let end = loop {
        tokio::select! {
            biased;
            () = socket.closing().cancelled() => {
                let (code, reason) = socket.close_request().unwrap_or((1000, String::new()));
                break End::Close(code, reason);
            }
            () = farewell.token().cancelled() => socket.request_close(farewell.code(), "the app is going away"),
            () = socket.too_slow().cancelled() => socket.request_close(1008, "too slow for its subscriptions"),
            permit = inbox.clone().reserve_owned(), if room.is_none() => match permit {
                Ok(permit) => room = Some(permit),
                Err(_) => break End::Close(1000, String::new()), // the module is gone
            },
            frame = ws.next(), if room.is_some() => {
                let inbound = match frame {
                    Some(Ok(Message::Text(text))) => Inbound::Text(Bytes::from(text)),
                    Some(Ok(Message::Binary(bytes))) => Inbound::Binary(bytes),
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                        socket.request_close(code, &reason);
                        break End::Peer;
                    }
                    // Pings are answered by tungstenite; pongs need nothing.
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => match protocol_close(&e) {
                        Some((code, reason)) => {
                            socket.request_close(code, reason);
                            break End::Close(code, reason.to_owned());
                        }
                        None => break End::Lost,
                    },
                    None => break End::Lost,
                };
                if let Some(permit) = room.take() {
                    permit.send(Box::new(inbound));
                }
            }
            message = outbox.recv() => {
                let Some(message) = message else { continue };
                // What else is queued goes in the same write.
                let more = std::iter::from_fn(|| outbox.try_recv().ok());
                if send_batch(&mut ws, std::iter::once(message).chain(more).map(|m| *m)).await.is_err() {
                    break End::Lost;
                }
            }
            Some(message) = forwarded.recv() => {
                let more = std::iter::from_fn(|| forwarded.try_recv().ok());
                let batch = std::iter::once(message).chain(more).map(|message| {
                    let payload = message.payload.clone();
                    Outbound { binary: std::str::from_utf8(&payload).is_err(), payload }
                });
                if send_batch(&mut ws, batch).await.is_err() {
                    break End::Lost;
                }
            }
            Some(_) = tick(&mut ping) => {
                if ws.send(Message::Ping(Bytes::new())).await.is_err() {
                    break End::Lost;
                }
            }
        }
    };
    match end {
        End::Close(code, reason) => {
            socket.request_close(code, &reason);
            // What the module queued before the close still goes out
            // (a last message, then the close).
            while let Ok(message) = outbox.try_recv() {
                if ws.feed(to_frame(*message)).await.is_err() {
                    return;
                }
            }
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            };
            if ws.close(Some(frame)).await.is_ok() {
                finish(&mut ws).await;
            }
        }
        End::Peer => finish(&mut ws).await,
        End::Lost => socket.request_close(1006, ""),
    }
}

/// Most messages written before one flush.
const BATCH: usize = 64;

/// Writes up to [`BATCH`] of `messages`, then flushes once: a burst costs
/// one system call, not one per message.
async fn send_batch<S>(
    ws: &mut WebSocketStream<S>,
    messages: impl Iterator<Item = Outbound>,
) -> Result<(), tungstenite::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for message in messages.take(BATCH) {
        ws.feed(to_frame(message)).await?;
    }
    ws.flush().await
}

fn to_frame(Outbound { binary, payload }: Outbound) -> Message {
    match binary {
        true => Message::Binary(payload),
        // `ws_send` checked that it is UTF-8.
        false => Utf8Bytes::try_from(payload.clone()).map_or(Message::Binary(payload), Message::Text),
    }
}

/// Reads until the close handshake completes (bounded).
async fn finish<S>(ws: &mut WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let drain = async { while let Some(Ok(_)) = ws.next().await {} };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
}

async fn tick(ping: &mut Option<tokio::time::Interval>) -> Option<()> {
    match ping {
        Some(ping) => {
            ping.tick().await;
            Some(())
        }
        None => std::future::pending().await,
    }
}

/// The close a protocol error calls for; `None` when the connection broke.
fn protocol_close(error: &tungstenite::Error) -> Option<(u16, &'static str)> {
    match error {
        tungstenite::Error::Capacity(_) => Some((1009, "message too big")),
        tungstenite::Error::Utf8(_) => Some((1007, "text message is not valid UTF-8")),
        tungstenite::Error::Protocol(_) | tungstenite::Error::AttackAttempt => Some((1002, "protocol error")),
        _ => None,
    }
}
