//! The messages of a room, stored in the app's default datasource.
//!
//! The SQL is the same on SQLite, PostgreSQL and MariaDB: `$n` placeholders,
//! integers bound as `i64` (BIGINT), `RETURNING id` for the new key.

use std::time::{SystemTime, UNIX_EPOCH};

use crabcat_sdk::{DbError, Request};

use crate::protocol::{ChatMessage, Nick, Room};

/// Messages a client gets when it joins, and `GET /rooms/{room}/messages` answers.
pub const HISTORY_LEN: i64 = 50;

/// The last [`HISTORY_LEN`] messages of `room`, oldest first.
///
/// # Errors
/// Any database error.
pub async fn recent(req: &Request, room: &Room) -> Result<Vec<ChatMessage>, DbError> {
    let mut messages: Vec<ChatMessage> = req
        .db()
        .query("SELECT id, nick, text, sent_at AS at FROM chat_messages WHERE room = $1 ORDER BY id DESC LIMIT $2")
        .bind(room.as_str())
        .bind(HISTORY_LEN)
        .fetch_all_as()
        .await?;
    messages.reverse();
    Ok(messages)
}

/// Stores a message from `nick` in `room`, stamped with the current time.
///
/// # Errors
/// Any database error.
pub async fn store(req: &Request, room: &Room, nick: &Nick, text: &str) -> Result<ChatMessage, DbError> {
    let at = unix_millis();
    let id: i64 = req
        .db()
        .query("INSERT INTO chat_messages (room, nick, text, sent_at) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(room.as_str())
        .bind(nick.as_str())
        .bind(text)
        .bind(at)
        .fetch_one_as()
        .await?;
    Ok(ChatMessage {
        id,
        nick: nick.as_str().to_owned(),
        text: text.to_owned(),
        at,
    })
}

/// Milliseconds since the Unix epoch (the SQL has no portable clock function).
fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
