//! One chat connection: join the room, send its history, then relay.
//!
//! The room is a hub topic (`room:NAME`). The connection subscribes
//! before it reads the history, so no message falls between the two; a
//! message in both arrives twice, with the same `id`, and the client keeps
//! one. What the client says is stored first, then published to the room,
//! which includes this connection: the sender sees its message once it is
//! stored, with its id and time.

use crabcat_sdk::prelude::*;

use crate::history;
use crate::presence::Presence;
use crate::protocol::{ClientEvent, Nick, Room, ServerEvent, checked_text};

/// The close code of a reload: the client reconnects to the new instance.
const SERVICE_RESTART: u16 = 1012;

/// Runs the connection of `nick` in `room` until it closes.
pub async fn serve(presence: &Presence, room: Room, nick: Nick, mut ws: WebSocket) {
    if !ws.subscribe(&room.topic()) {
        return;
    }
    match history::recent(ws.request(), &room).await {
        Ok(messages) => {
            let event = ServerEvent::History {
                room: room.as_str(),
                messages: &messages,
            };
            let _ = ws.send(event.to_json()).await;
        }
        Err(e) => {
            log::error!("history of room {} unavailable: {e}", room.as_str());
            ws.close(1011, "the history is unavailable, try again");
            return;
        }
    }
    let membership = presence.join(&room, &nick);
    // A failed send means the connection is closing: the next `recv`
    // returns `None`, so every arm may ignore it.
    while let Some(message) = ws.recv().await {
        match message {
            hub_message @ Message::Hub { .. } => {
                let _ = ws.send(hub_message).await;
            }
            Message::Text(text) => receive(&ws, &room, &nick, &text).await,
            Message::Binary(_) => refuse(&ws, "binary messages are not understood").await,
        }
    }
    if ws.close_code().is_some_and(|(code, _)| code == SERVICE_RESTART) {
        membership.leave_quietly();
    }
}

/// Handles one text message from the client.
async fn receive(ws: &WebSocket, room: &Room, nick: &Nick, text: &str) {
    let said = match serde_json::from_str::<ClientEvent>(text) {
        Ok(ClientEvent::Message { text }) => text,
        Err(e) => return refuse(ws, &format!("not a chat event: {e}")).await,
    };
    let said = match checked_text(&said) {
        Ok(said) => said,
        Err(problem) => return refuse(ws, &problem).await,
    };
    match history::store(ws.request(), room, nick, said).await {
        Ok(stored) => {
            hub().publish(&room.topic(), ServerEvent::Message(&stored).to_json());
        }
        Err(e) => {
            log::error!("message to room {} not stored: {e}", room.as_str());
            refuse(ws, "the message could not be stored, try again").await;
        }
    }
}

/// Tells the client its message was refused; the connection stays open.
async fn refuse(ws: &WebSocket, why: &str) {
    let _ = ws.send(ServerEvent::Error { text: why }.to_json()).await;
}
