//! The native twin of the bench app's `/ws/room/{room}`: a WebSocket chat
//! room on a `tokio::sync::broadcast` channel per room, with the settings
//! that make it comparable with the container's: a 4 KiB read buffer, a
//! 1 MiB message limit, a 256-message queue per subscriber and close code
//! 1008 for a subscriber that falls behind it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use tokio::sync::broadcast;

/// As the container's hub: messages a subscriber may have queued.
const QUEUE: usize = 256;

/// The rooms, by name; a room goes when its last member leaves.
#[derive(Default)]
pub struct Rooms(Mutex<HashMap<String, broadcast::Sender<Utf8Bytes>>>);

impl Rooms {
    fn join(&self, room: &str) -> (broadcast::Sender<Utf8Bytes>, broadcast::Receiver<Utf8Bytes>) {
        let mut rooms = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = rooms
            .entry(room.to_owned())
            .or_insert_with(|| broadcast::channel(QUEUE).0);
        (sender.clone(), sender.subscribe())
    }

    fn leave(&self, room: &str) {
        let mut rooms = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if rooms.get(room).is_some_and(|s| s.receiver_count() == 0) {
            rooms.remove(room);
        }
    }
}

/// `GET /ws/room/{room}`
pub async fn room(Path(room): Path<String>, State(rooms): State<Arc<Rooms>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .read_buffer_size(4096)
        .max_message_size(1024 * 1024)
        .max_frame_size(1024 * 1024)
        .on_upgrade(move |socket| async move {
            let (sender, receiver) = rooms.join(&room);
            serve(socket, &sender, receiver).await;
            drop(sender);
            rooms.leave(&room);
        })
}

/// What a client sends goes to the room; what the room gets goes to the client.
async fn serve(
    mut socket: WebSocket,
    room: &broadcast::Sender<Utf8Bytes>,
    mut messages: broadcast::Receiver<Utf8Bytes>,
) {
    loop {
        tokio::select! {
            received = socket.recv() => match received {
                Some(Ok(Message::Text(text))) => {
                    let _ = room.send(text);
                }
                // After a close, the next read sends tungstenite's answer
                // and ends the stream.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            message = messages.recv() => match message {
                Ok(text) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let frame = CloseFrame { code: 1008, reason: "too slow for its room".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}
