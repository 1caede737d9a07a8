//! # bench — the TechEmpower Framework Benchmarks test types as a module
//!
//! `/plaintext`, `/json`, `/db`, `/queries?queries=N`, `/fortunes`,
//! `/updates?queries=N`, following the TFB requirements. Its migrations
//! create and fill `world` (10,000 rows) and `fortune` on SQLite,
//! PostgreSQL and MySQL/MariaDB. `bench/native` serves the same endpoints with the same SQL
//! from a plain axum binary; `bench/run.sh` compares the two.
//!
//! `/ws/room/{room}` is a WebSocket chat room through the container's hub:
//! what a client sends goes to everyone in the room (itself too).
//! `bench/ws.sh` loads it with thousands of clients against the same room
//! in `bench/native` (axum and a `tokio::sync::broadcast` per room).
//!
//! ```text
//! curl localhost:8080/bench/json        # {"message":"Hello, World!"}
//! curl localhost:8080/bench/queries?queries=3
//! ```

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crabcat_sdk::prelude::*;
use serde::Serialize;

struct Bench {
    seed: AtomicU64,
}

#[derive(Serialize)]
struct World {
    id: i32,
    #[serde(rename = "randomNumber")]
    random_number: i32,
}

#[derive(Serialize)]
struct Greeting {
    message: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration::new(1, "create and fill world", include_str!("../migrations/0001_world.sql"))
        .postgres(include_str!("../migrations/0001_world.postgres.sql"))
        .mysql(include_str!("../migrations/0001_world.mysql.sql")),
    Migration::new(
        2,
        "create and fill fortune",
        include_str!("../migrations/0002_fortune.sql"),
    ),
];

impl App for Bench {
    const MIGRATIONS: &'static [Migration] = MIGRATIONS;

    fn init(_ctx: &InitContext) -> Result<Self> {
        Ok(Bench {
            seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        })
    }

    fn routes(routes: &mut Routes<Self>) {
        routes
            .get("/plaintext", Self::plaintext)
            .get("/json", Self::json)
            .get("/db", Self::db)
            .get("/queries", Self::queries)
            .get("/fortunes", Self::fortunes)
            .get("/updates", Self::updates)
            .websocket("/ws/room/{room}", Self::room);
    }
}

/// TFB: `queries` clamped to 1..=500; missing or not a number means 1.
fn query_count(req: &Request) -> usize {
    req.query("queries")
        .and_then(|q| q.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, 500)
}

impl Bench {
    /// A random id in 1..=10000 (xorshift; no threads, no thread-locals).
    fn random_id(&self) -> i32 {
        let mut x = self.seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        (x % 10_000) as i32 + 1
    }

    async fn plaintext() -> Response {
        Response::bytes("text/plain", "Hello, World!").with_header("server", "crabcat")
    }

    async fn json() -> Response {
        Response::json(&Greeting {
            message: "Hello, World!",
        })
        .with_header("server", "crabcat")
    }

    async fn world(&self, req: &Request, id: i32) -> Result<World> {
        let (id, random_number) = req
            .db()
            .query("SELECT id, randomnumber FROM world WHERE id = $1")
            .bind(id)
            .fetch_one_as()
            .await?;
        Ok(World { id, random_number })
    }

    async fn db(app: State<Self>, req: Request) -> Result<Response> {
        let world = app.world(&req, app.random_id()).await?;
        Ok(Response::json(&world).with_header("server", "crabcat"))
    }

    async fn queries(app: State<Self>, req: Request) -> Result<Response> {
        let mut worlds = Vec::with_capacity(query_count(&req));
        for _ in 0..worlds.capacity() {
            worlds.push(app.world(&req, app.random_id()).await?);
        }
        Ok(Response::json(&worlds).with_header("server", "crabcat"))
    }

    async fn updates(app: State<Self>, req: Request) -> Result<Response> {
        let mut worlds = Vec::with_capacity(query_count(&req));
        for _ in 0..worlds.capacity() {
            let mut world = app.world(&req, app.random_id()).await?;
            world.random_number = app.random_id();
            worlds.push(world);
        }
        for world in &worlds {
            req.db()
                .query("UPDATE world SET randomnumber = $1 WHERE id = $2")
                .bind(world.random_number)
                .bind(world.id)
                .execute()
                .await?;
        }
        Ok(Response::json(&worlds).with_header("server", "crabcat"))
    }

    async fn fortunes(req: Request) -> Result<Response> {
        let mut fortunes: Vec<(i64, String)> = req.db().query("SELECT id, message FROM fortune").fetch_all_as().await?;
        fortunes.push((0, "Additional fortune added at request time.".to_owned()));
        fortunes.sort_by(|a, b| a.1.cmp(&b.1));
        let mut html = String::with_capacity(2048);
        html.push_str("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>");
        for (id, message) in &fortunes {
            html.push_str(&format!("<tr><td>{id}</td><td>{}</td></tr>", html_escape(message)));
        }
        html.push_str("</table></body></html>");
        Ok(Response::html(html).with_header("server", "crabcat"))
    }

    /// Joins hub topic `room:{room}`: a text message from the client is
    /// published to the room, and the container forwards what the room
    /// gets straight to the client (the handler only sees what it sends).
    async fn room(Path(room): Path<String>, mut ws: WebSocket) {
        let topic = format!("room:{room}");
        ws.forward(&topic);
        while let Some(message) = ws.recv().await {
            match message {
                Message::Text(text) => {
                    hub().publish(&topic, text);
                }
                Message::Binary(_) => ws.close(1003, "text only"),
                Message::Hub { .. } => {}
            }
        }
    }
}

crabcat_sdk::export_app!(Bench);
