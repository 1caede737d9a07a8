//! Who is in which room, in this instance, announced through the hub.
//!
//! The table counts connections per nickname, so two tabs of one nickname
//! are one member: it joins with the first and leaves with the last. It
//! lives in the app instance: a reload starts with an empty table, and the
//! clients, disconnected with 1012, reconnect and rebuild it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crabcat_sdk::hub;

use crate::protocol::{Nick, Room, ServerEvent};

/// Connections per nickname, per room.
#[derive(Debug, Default)]
pub struct Presence {
    rooms: Mutex<HashMap<Room, BTreeMap<Nick, usize>>>,
}

impl Presence {
    fn rooms(&self) -> MutexGuard<'_, HashMap<Room, BTreeMap<Nick, usize>>> {
        // Every change is one insert or remove: a panic cannot leave it torn.
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a connection of `nick` in `room` and publishes the members to
    /// the room: with `joined` for the nick's first connection, without it
    /// for a further one (which still needs the list). The membership ends
    /// when the returned guard is dropped.
    pub fn join<'a>(&'a self, room: &Room, nick: &Nick) -> Membership<'a> {
        let (first, members) = {
            let mut rooms = self.rooms();
            let nicks = rooms.entry(room.clone()).or_default();
            let count = nicks.entry(nick.clone()).or_insert(0);
            *count += 1;
            (*count == 1, member_names(nicks))
        };
        let event = ServerEvent::Presence {
            joined: first.then_some(nick.as_str()),
            left: None,
            members: &members,
        };
        hub().publish(&room.topic(), event.to_json());
        Membership {
            presence: self,
            room: room.clone(),
            nick: nick.clone(),
            announce_leave: true,
        }
    }

    /// Uncounts a connection; `Some(members)` if it was the nick's last.
    fn leave(&self, room: &Room, nick: &Nick) -> Option<Vec<String>> {
        let mut rooms = self.rooms();
        let nicks = rooms.get_mut(room)?;
        let count = nicks.get_mut(nick)?;
        *count -= 1;
        if *count > 0 {
            return None;
        }
        nicks.remove(nick);
        let members = member_names(nicks);
        if nicks.is_empty() {
            rooms.remove(room);
        }
        Some(members)
    }
}

fn member_names(nicks: &BTreeMap<Nick, usize>) -> Vec<String> {
    nicks.keys().map(|nick| nick.as_str().to_owned()).collect()
}

/// One connection's place in a room. Dropping it (when the connection
/// ends, even by a panic) leaves the room and, if it was the nick's last
/// connection, announces `left`.
#[derive(Debug)]
pub struct Membership<'a> {
    presence: &'a Presence,
    room: Room,
    nick: Nick,
    announce_leave: bool,
}

impl Membership<'_> {
    /// Leaves without announcing it: for a reload, where the instance goes
    /// away and the client is about to rejoin the next one (whose members
    /// the announcement would contradict).
    pub fn leave_quietly(mut self) {
        self.announce_leave = false;
    }
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        let Some(members) = self.presence.leave(&self.room, &self.nick) else {
            return;
        };
        if self.announce_leave {
            let event = ServerEvent::Presence {
                joined: None,
                left: Some(self.nick.as_str()),
                members: &members,
            };
            hub().publish(&self.room.topic(), event.to_json());
        }
    }
}
