//! The chat sample app: rooms, presence and history over WebSockets, the
//! hub and the data API, on SQLite and (when configured) PostgreSQL and
//! MySQL/MariaDB.

use std::time::Duration;

use crabcat_tests::{Container, MyDb, PgDb, module, problem};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn chat(datasource: Option<&str>) -> Container {
    let mut builder = Container::builder().deploy(&module("chat"), "chat.so");
    if let Some(url) = datasource {
        builder = builder.datasource(url);
    }
    builder.start()
}

fn socket_url(c: &Container, room: &str, nick: &str) -> String {
    let nick: String = nick
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    c.url(&format!("/chat/ws/{room}?nick={nick}"))
        .replacen("http://", "ws://", 1)
}

/// Joins `room` as `nick`; returns the socket and the history it got first.
async fn join(c: &Container, room: &str, nick: &str) -> (Socket, Vec<Value>) {
    let (mut socket, response) = tokio_tungstenite::connect_async(socket_url(c, room, nick))
        .await
        .unwrap_or_else(|e| panic!("joining {room} as {nick}: {e}\n{}", c.logs()));
    assert_eq!(response.status(), 101);
    let history = event(&mut socket).await;
    assert_eq!(history["type"], "history", "{history}");
    assert_eq!(history["room"], room);
    let messages = history["messages"].as_array().expect("messages").clone();
    (socket, messages)
}

/// The status with which the handshake to `url` is refused.
async fn refused(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{url}: {e}"),
        Ok(_) => panic!("{url}: accepted"),
    }
}

/// The next event (a JSON text message), within 10 s.
async fn event(socket: &mut Socket) -> Value {
    let wait = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("an event within 10 s")
}

/// The next event, which must be a chat message; returns `(nick, text)`.
async fn message(socket: &mut Socket) -> (String, String) {
    let event = event(socket).await;
    assert_eq!(event["type"], "message", "{event}");
    assert!(event["id"].as_i64().unwrap() > 0, "{event}");
    assert!(
        event["at"].as_i64().unwrap() > 1_700_000_000_000,
        "milliseconds: {event}"
    );
    (text_of(&event["nick"]), text_of(&event["text"]))
}

/// The next event, which must be a presence event; returns it.
async fn presence(socket: &mut Socket) -> Value {
    let event = event(socket).await;
    assert_eq!(event["type"], "presence", "{event}");
    event
}

fn text_of(value: &Value) -> String {
    value.as_str().expect("a string").to_owned()
}

async fn say(socket: &mut Socket, text: &str) {
    let event = json!({"type": "message", "text": text}).to_string();
    socket.send(Message::text(event)).await.unwrap();
}

/// The close code the server sent.
async fn close_code(socket: &mut Socket) -> u16 {
    let wait = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => continue,
                other => panic!("the connection ended without a close frame: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("closed within 10 s")
}

/// `GET /chat/rooms/{room}/messages`: the texts.
async fn http_history(c: &Container, room: &str) -> Vec<String> {
    let (status, body) = c.get(&format!("/chat/rooms/{room}/messages")).await;
    assert_eq!(status, 200, "{body}");
    let listing: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listing["room"], room);
    listing["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| text_of(&m["text"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_in_a_room_see_each_other_and_another_room_sees_nothing() {
    let c = chat(None);
    let (mut alice, history) = join(&c, "lobby", "alice").await;
    assert!(history.is_empty());
    assert_eq!(
        presence(&mut alice).await,
        json!({"type": "presence", "joined": "alice", "members": ["alice"]})
    );
    let (mut bob, _) = join(&c, "lobby", "bob").await;
    let bob_joined = json!({"type": "presence", "joined": "bob", "members": ["alice", "bob"]});
    assert_eq!(presence(&mut bob).await, bob_joined);
    assert_eq!(presence(&mut alice).await, bob_joined);
    let (mut carol, _) = join(&c, "elsewhere", "carol").await;
    assert_eq!(presence(&mut carol).await["members"], json!(["carol"]));

    // Sent as typed (the page escapes it), to everyone in the room, the sender too.
    say(&mut alice, "<b>hi</b> & <script>alert(1)</script>").await;
    for socket in [&mut alice, &mut bob] {
        let expected = ("alice".to_owned(), "<b>hi</b> & <script>alert(1)</script>".to_owned());
        assert_eq!(message(socket).await, expected);
    }
    say(&mut carol, "anyone?").await;
    assert_eq!(message(&mut carol).await.1, "anyone?");
    say(&mut bob, "second").await;
    for socket in [&mut alice, &mut bob] {
        assert_eq!(
            message(socket).await,
            ("bob".to_owned(), "second".to_owned()),
            "not carol's"
        );
    }

    // A second connection of a nick is not a second member, and its end no departure.
    let (mut alice_again, _) = join(&c, "lobby", "alice").await;
    let list = json!({"type": "presence", "members": ["alice", "bob"]});
    assert_eq!(presence(&mut alice_again).await, list);
    assert_eq!(presence(&mut alice).await, list);
    assert_eq!(presence(&mut bob).await, list);
    alice_again.close(None).await.unwrap();
    bob.close(None).await.unwrap();
    assert_eq!(
        presence(&mut alice).await,
        json!({"type": "presence", "left": "bob", "members": ["alice"]}),
        "bob's departure, and nothing about alice's second connection"
    );

    say(&mut carol, "still alone").await;
    assert_eq!(message(&mut carol).await.1, "still alone", "nothing from the lobby");
}

/// 55 messages: a new connection and the HTTP endpoint get the last 50, oldest first.
async fn history_keeps_the_last_50(datasource: Option<&str>) {
    let c = chat(datasource);
    let (mut ann, _) = join(&c, "history", "ann").await;
    presence(&mut ann).await;
    for i in 0..55 {
        say(&mut ann, &format!("message {i}")).await;
    }
    for i in 0..55 {
        assert_eq!(message(&mut ann).await.1, format!("message {i}"));
    }
    let expected: Vec<String> = (5..55).map(|i| format!("message {i}")).collect();

    let (_ben, history) = join(&c, "history", "ben").await;
    let texts: Vec<String> = history.iter().map(|m| text_of(&m["text"])).collect();
    assert_eq!(texts, expected);
    assert!(history.iter().all(|m| m["nick"] == "ann"));
    let ids: Vec<i64> = history.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    assert_eq!(http_history(&c, "history").await, expected);
    assert!(http_history(&c, "empty-room").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn history_keeps_the_last_50_on_sqlite() {
    history_keeps_the_last_50(None).await;
}

#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn history_keeps_the_last_50_on_postgres() {
    let db = PgDb::create("chat_history_keeps_the_last_50_on_postgres").await;
    history_keeps_the_last_50(Some(&db.url)).await;
}

#[cfg_attr(not(mysql_tests), ignore = "set CRABCAT_TEST_MYSQL_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn history_keeps_the_last_50_on_mysql() {
    let db = MyDb::create("chat_history_keeps_the_last_50_on_mysql").await;
    history_keeps_the_last_50(Some(&db.url)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_closes_with_1012_and_the_history_is_there_after_reconnecting() {
    let c = chat(None);
    let (mut ann, _) = join(&c, "lobby", "ann").await;
    let (mut ben, _) = join(&c, "lobby", "ben").await;
    presence(&mut ann).await; // ann joined
    presence(&mut ann).await; // ben joined
    say(&mut ann, "before the reload").await;
    assert_eq!(message(&mut ann).await.1, "before the reload");

    let (status, body) = c.admin_call(c.admin(reqwest::Method::POST, "/apps/chat/reload")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(close_code(&mut ann).await, 1012);
    assert_eq!(close_code(&mut ben).await, 1012);

    // The new instance starts with nobody in the room; the clients rebuild it.
    let (mut ann, history) = join(&c, "lobby", "ann").await;
    let texts: Vec<String> = history.iter().map(|m| text_of(&m["text"])).collect();
    assert_eq!(texts, ["before the reload"]);
    assert_eq!(
        presence(&mut ann).await,
        json!({"type": "presence", "joined": "ann", "members": ["ann"]})
    );
    let (mut ben, _) = join(&c, "lobby", "ben").await;
    assert_eq!(presence(&mut ben).await["members"], json!(["ann", "ben"]));
    assert_eq!(presence(&mut ann).await["joined"], "ben");
    say(&mut ben, "after the reload").await;
    assert_eq!(
        message(&mut ann).await,
        ("ben".to_owned(), "after the reload".to_owned())
    );
    assert_eq!(
        http_history(&c, "lobby").await,
        ["before the reload", "after the reload"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rooms_nicks_and_messages_are_refused() {
    let c = chat(None);
    let long_nick = "n".repeat(33);
    let long_room = "r".repeat(33);
    for (room, nick) in [
        ("lobby", long_nick.as_str()),
        ("lobby", ""),
        ("lobby", "   "),
        ("lobby", "tab\tbed"),
        ("Lobby", "ann"),
        ("a_b", "ann"),
        (long_room.as_str(), "ann"),
    ] {
        assert_eq!(refused(&socket_url(&c, room, nick)).await, 400, "{room:?} {nick:?}");
    }
    let no_nick = c.url("/chat/ws/lobby").replacen("http://", "ws://", 1);
    assert_eq!(refused(&no_nick).await, 400, "no nick");
    let (status, body) = c.get("/chat/rooms/Not_A_Room/messages").await;
    assert_eq!(
        problem(&body),
        (
            400,
            "invalid path parameter: a room name is 1 to 32 characters of a-z, 0-9 and '-'".to_owned()
        )
    );
    assert_eq!(status, 400);

    // Limits count characters, not bytes; nicks are trimmed.
    let nick = "é".repeat(32);
    let (mut socket, _) = join(&c, &"r".repeat(32), &format!("  {nick} ")).await;
    assert_eq!(presence(&mut socket).await["joined"], nick.as_str());
    let refusals = [
        json!({"type": "message", "text": "x".repeat(2001)}).to_string(),
        json!({"type": "message", "text": " \n "}).to_string(),
        json!({"type": "message", "text": "bell \u{7}"}).to_string(),
        json!({"type": "shout", "text": "hi"}).to_string(),
        "plain text".to_owned(),
    ];
    for refusal in refusals {
        socket.send(Message::text(refusal.clone())).await.unwrap();
        let event = event(&mut socket).await;
        assert_eq!(event["type"], "error", "{refusal}: {event}");
    }
    socket.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(event(&mut socket).await["type"], "error");
    let longest = "é".repeat(2000);
    say(&mut socket, &format!("  {longest}\n")).await;
    assert_eq!(message(&mut socket).await, (nick, longest.clone()), "stored trimmed");
    assert_eq!(
        http_history(&c, &"r".repeat(32)).await,
        [longest],
        "nothing refused was stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_its_files_are_served_by_the_app() {
    let c = chat(None);
    let response = c.client().get(c.url("/chat/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert!(header("content-security-policy").contains("script-src 'self'"));
    let page = response.text().await.unwrap();
    assert!(
        page.contains(r#"<script src="/chat/static/chat.js" defer></script>"#),
        "{page}"
    );
    assert!(page.contains(r#"<link rel="stylesheet" href="/chat/static/chat.css">"#));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing external"
    );

    for (path, content_type) in [
        ("/chat/static/chat.js", "text/javascript; charset=utf-8"),
        ("/chat/static/chat.css", "text/css; charset=utf-8"),
    ] {
        let response = c.client().get(c.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type);
        let body = response.text().await.unwrap();
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "http://",
            "https://",
        ] {
            assert!(!body.contains(banned), "{path} uses {banned}");
        }
    }
}
