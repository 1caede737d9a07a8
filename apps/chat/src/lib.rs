//! # chat — rooms, presence and history over WebSockets
//!
//! Shows WebSockets, the container's pub/sub hub and the data API working
//! together: a chat page served by the app itself (plain HTML, CSS and JS
//! compiled into the module from `static/`, nothing fetched from elsewhere),
//! rooms as hub topics, join/leave presence kept in the app's own state,
//! and every message stored in the app's default datasource (SQLite unless
//! configured otherwise; the migration has PostgreSQL and MySQL variants), so a
//! client that joins — or rejoins after a reload — gets the room's last 50
//! messages. The page reconnects with exponential backoff when the
//! connection closes (1012 on a reload, 1001 on shutdown) and rejoins the
//! same room with the same nickname.
//!
//! Build and deploy (from the repository root):
//!
//! ```text
//! cargo build -p chat && cp target/debug/libchat.so deploy/.chat.so.tmp && mv deploy/.chat.so.tmp deploy/chat.so
//! ```
//!
//! Then open <http://localhost:8080/chat/> in two browser windows (the room
//! is in the URL: `/chat/#lobby`), or:
//!
//! ```text
//! websocat 'ws://localhost:8080/chat/ws/lobby?nick=ferris'
//!     # {"type":"history","room":"lobby","messages":[]}
//!     # {"type":"presence","joined":"ferris","members":["ferris"]}
//!     {"type":"message","text":"Hello!"}
//!     # {"type":"message","id":1,"nick":"ferris","text":"Hello!","at":1714567890123}
//! curl localhost:8080/chat/rooms/lobby/messages
//!     # {"room":"lobby","messages":[{"id":1,"nick":"ferris","text":"Hello!","at":1714567890123}]}
//! curl -i localhost:8080/chat/rooms/No_Such/messages   # 400 problem document
//! ```
//!
//! Rules, checked on the server: a room name is 1 to 32 of `a-z`, `0-9`
//! and `-`; a nickname 1 to 32 characters (trimmed, no control
//! characters); a message 1 to 2000 characters. A bad room or nickname
//! refuses the handshake with a `400`; a bad message is answered with
//! `{"type":"error","text":…}` and the connection stays open. The protocol
//! is described in `protocol.rs`. The page renders everything users typed
//! as text (`textContent`), never as HTML.
//!
//! # Layout
//!
//! * this file: the app, its routes, the page and its static files;
//! * `protocol`: the JSON events and the checked room, nickname and text;
//! * `socket`: one connection, from join to leave;
//! * `presence`: who is in which room, and the join/leave announcements;
//! * `history`: the queries that store and read messages.

#![forbid(unsafe_code)]

mod history;
mod presence;
mod protocol;
mod socket;

use crabcat_sdk::prelude::*;
use serde::Serialize;

use presence::Presence;
use protocol::{ChatMessage, Join, Room};

/// The page's policy: its own scripts, styles and WebSocket only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../static/index.html");
const CHAT_JS: &str = include_str!("../static/chat.js");
const CHAT_CSS: &str = include_str!("../static/chat.css");

struct Chat {
    /// The page, with the context path filled in.
    page: String,
    presence: Presence,
}

impl App for Chat {
    const MIGRATIONS: &'static [Migration] = &[Migration::new(
        1,
        "create chat_messages",
        include_str!("../migrations/0001_create_messages.sql"),
    )
    .postgres(include_str!("../migrations/0001_create_messages.postgres.sql"))
    .mysql(include_str!("../migrations/0001_create_messages.mysql.sql"))];

    fn init(ctx: &InitContext) -> Result<Self> {
        log::info!("chat initialised at {:?}", ctx.context_path());
        Ok(Chat {
            page: INDEX_HTML.replace("{{base}}", &html_escape(ctx.context_path())),
            presence: Presence::default(),
        })
    }

    fn routes(routes: &mut Routes<Self>) {
        routes
            .get("/", Self::index)
            .get("/static/chat.js", || async {
                static_file("text/javascript; charset=utf-8", CHAT_JS)
            })
            .get("/static/chat.css", || async {
                static_file("text/css; charset=utf-8", CHAT_CSS)
            })
            .websocket("/ws/{room}", Self::socket)
            .get("/rooms/{room}/messages", Self::messages);
    }

    fn destroy(&self) {
        log::info!("chat destroyed");
    }
}

/// The answer of `GET /rooms/{room}/messages`.
#[derive(Debug, Serialize)]
struct Listing {
    room: Room,
    /// The last 50, oldest first.
    messages: Vec<ChatMessage>,
}

impl Chat {
    /// `GET /`: the chat page.
    async fn index(app: State<Self>) -> Response {
        Response::html(app.page.clone())
            .with_header("content-security-policy", CONTENT_SECURITY_POLICY)
            .with_header("x-content-type-options", "nosniff")
            .with_header("cache-control", "no-cache")
    }

    /// `GET /ws/{room}?nick=NICK`: a chat connection. A bad room or nick is
    /// a `400` before the handshake is accepted.
    async fn socket(app: State<Self>, Path(room): Path<Room>, Query(join): Query<Join>, ws: WebSocket) {
        socket::serve(&app.presence, room, join.nick, ws).await;
    }

    /// `GET /rooms/{room}/messages`: the room's last 50 messages.
    async fn messages(Path(room): Path<Room>, req: Request) -> Result<Json<Listing>> {
        let messages = history::recent(&req, &room).await?;
        Ok(Json(Listing { room, messages }))
    }
}

/// A file of `static/`, `no-cache` so that a browser never keeps running the
/// script of an earlier deployment (the files are small).
fn static_file(content_type: &'static str, body: &'static str) -> Response {
    Response::bytes(content_type, body)
        .with_header("x-content-type-options", "nosniff")
        .with_header("cache-control", "no-cache")
}

crabcat_sdk::export_app!(Chat);
