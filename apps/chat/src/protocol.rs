//! The JSON spoken over the socket, and the checked values it carries.
//!
//! Client → server: `{"type":"message","text":"…"}`.
//!
//! Server → client:
//!
//! * `{"type":"history","room":"lobby","messages":[…]}` first, the room's
//!   last [`HISTORY_LEN`](crate::history::HISTORY_LEN) messages, oldest first;
//! * `{"type":"message","id":7,"nick":"alice","text":"hi","at":1714567890123}`
//!   for each new message (`at` is Unix milliseconds; `id` grows);
//! * `{"type":"presence","joined":"bob","members":["alice","bob"]}`, or
//!   `"left"` instead of `"joined"`, or neither (just the list, when a
//!   nick that is already in the room opens another connection);
//! * `{"type":"error","text":"…"}` for a message that was refused; the
//!   connection stays open.
//!
//! Room names and nicknames are checked when they are deserialised, so a
//! handler never sees an invalid one: a bad `Path`/`Query` value is a `400`
//! before the WebSocket handshake is accepted.

use serde::{Deserialize, Serialize};

/// Longest nickname, in characters.
pub const NICK_MAX: usize = 32;
/// Longest room name, in characters (`[a-z0-9-]`).
pub const ROOM_MAX: usize = 32;
/// Longest message, in characters.
pub const TEXT_MAX: usize = 2000;

/// A room name: 1 to 32 of `a`–`z`, `0`–`9` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Room(String);

impl TryFrom<String> for Room {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if name.is_empty() || name.len() > ROOM_MAX || !name.chars().all(allowed) {
            return Err(format!("a room name is 1 to {ROOM_MAX} characters of a-z, 0-9 and '-'"));
        }
        Ok(Room(name))
    }
}

impl From<Room> for String {
    fn from(room: Room) -> String {
        room.0
    }
}

impl Room {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hub topic of the room.
    pub fn topic(&self) -> String {
        format!("room:{}", self.0)
    }
}

/// A nickname: trimmed, 1 to 32 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Nick(String);

impl TryFrom<String> for Nick {
    type Error = String;

    fn try_from(nick: String) -> Result<Self, String> {
        let nick = nick.trim();
        let chars = nick.chars().count();
        if chars == 0 || chars > NICK_MAX || nick.chars().any(char::is_control) {
            return Err(format!(
                "a nickname is 1 to {NICK_MAX} characters, without control characters"
            ));
        }
        Ok(Nick(nick.to_owned()))
    }
}

impl From<Nick> for String {
    fn from(nick: Nick) -> String {
        nick.0
    }
}

impl Nick {
    /// The nickname.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks the text of a message: trimmed, 1 to 2000 characters, no control
/// characters but line breaks and tabs.
///
/// # Errors
/// What is wrong with it, for the client.
pub fn checked_text(text: &str) -> Result<&str, String> {
    let text = text.trim();
    let chars = text.chars().count();
    if chars == 0 {
        return Err("a message cannot be empty".to_owned());
    }
    if chars > TEXT_MAX {
        return Err(format!(
            "a message is at most {TEXT_MAX} characters (this one has {chars})"
        ));
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err("a message must not contain control characters".to_owned());
    }
    Ok(text)
}

/// The query of the socket: `/ws/{room}?nick=alice`.
#[derive(Debug, Deserialize)]
pub struct Join {
    pub nick: Nick,
}

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientEvent {
    /// Say something in the room.
    Message { text: String },
}

/// A stored message: a row of `chat_messages`, and its JSON form.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatMessage {
    pub id: i64,
    pub nick: String,
    pub text: String,
    /// Unix milliseconds.
    pub at: i64,
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerEvent<'a> {
    History {
        room: &'a str,
        messages: &'a [ChatMessage],
    },
    Message(&'a ChatMessage),
    Presence {
        #[serde(skip_serializing_if = "Option::is_none")]
        joined: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        left: Option<&'a str>,
        members: &'a [String],
    },
    Error {
        text: &'a str,
    },
}

impl ServerEvent<'_> {
    /// The event as JSON text.
    pub fn to_json(&self) -> String {
        // Plain structs of strings and integers always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        for good in ["lobby", "a", "room-42", &"x".repeat(ROOM_MAX)] {
            assert!(Room::try_from(good.to_owned()).is_ok(), "{good}");
        }
        for bad in ["", "Lobby", "a b", "a_b", "é", "../x", &"x".repeat(ROOM_MAX + 1)] {
            assert!(Room::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn nicknames_are_trimmed_and_limited_in_characters() {
        let nick = Nick::try_from("  <b>ferris</b> ".to_owned()).unwrap();
        assert_eq!(nick.as_str(), "<b>ferris</b>");
        assert!(Nick::try_from("é".repeat(NICK_MAX)).is_ok());
        for bad in ["", "   ", "a\u{0}b", "tab\there", &"é".repeat(NICK_MAX + 1)] {
            assert!(Nick::try_from(bad.to_owned()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn message_texts() {
        assert_eq!(checked_text("  hi\n there\t "), Ok("hi\n there"));
        assert!(checked_text(&"é".repeat(TEXT_MAX)).is_ok());
        assert!(checked_text(&"é".repeat(TEXT_MAX + 1)).is_err());
        assert!(checked_text(" \n ").is_err());
        assert!(checked_text("bell\u{7}").is_err());
    }

    #[test]
    fn events_serialise_as_documented() {
        let message = ChatMessage {
            id: 7,
            nick: "alice".into(),
            text: "<b>hi</b>".into(),
            at: 1,
        };
        assert_eq!(
            ServerEvent::Message(&message).to_json(),
            r#"{"type":"message","id":7,"nick":"alice","text":"<b>hi</b>","at":1}"#
        );
        let members = ["alice".to_owned(), "bob".to_owned()];
        let joined = ServerEvent::Presence {
            joined: Some("bob"),
            left: None,
            members: &members,
        };
        assert_eq!(
            joined.to_json(),
            r#"{"type":"presence","joined":"bob","members":["alice","bob"]}"#
        );
        let event: ClientEvent = serde_json::from_str(r#"{"type":"message","text":"hi"}"#).unwrap();
        assert!(matches!(event, ClientEvent::Message { text } if text == "hi"));
    }
}
