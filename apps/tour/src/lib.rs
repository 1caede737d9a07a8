//! # tour — the SDK's features in one app
//!
//! `apps/hello` is the smallest app; this one shows the rest: handlers that
//! take extractors (`State`, `Path`, `Query`, the `Request`), a config
//! section deserialised straight into the app, request bodies, a blocking
//! handler and its `400` problem document, a streamed body, Server-Sent
//! Events and a WebSocket.
//!
//! Build and deploy (from the repository root; `scripts/run.sh` does it for
//! every app):
//!
//! ```text
//! cargo build --release -p tour
//! cp target/release/libtour.so deploy/.tour.so.tmp && mv deploy/.tour.so.tmp deploy/tour.so
//! ```
//!
//! Then:
//!
//! ```text
//! curl localhost:8080/tour/                      # Hello from Crabcat!
//! curl localhost:8080/tour/greet/Ferris          # Hello, Ferris!
//! curl -d 'some bytes' localhost:8080/tour/echo  # some bytes
//! curl localhost:8080/tour/config                # {"greeting":"Hello","app":"tour"}
//! curl localhost:8080/tour/blocking?n=30         # fib(30) = 832040, computed on a blocking thread
//! curl localhost:8080/tour/blocking?n=x          # 400 {"type":"about:blank","title":"Bad Request","status":400,"detail":"invalid query string: …"}
//! curl localhost:8080/tour/count?n=3             # 1, 2, 3: a body streamed line by line
//! curl -N localhost:8080/tour/sse/clock          # one Server-Sent Event a second
//! websocat ws://localhost:8080/tour/ws/echo      # echoes text and binary messages
//! ```
//!
//! Config (`crabcat.toml`): `[apps.tour.config] greeting = "Howdy"`.

#![forbid(unsafe_code)]

use std::time::Duration;

use crabcat_sdk::futures_util::stream;
use crabcat_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The app: its config section deserialises into it, and `/config` shows it.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Tour {
    #[serde(default = "default_greeting")]
    greeting: String,
    #[serde(skip_deserializing, rename = "app")]
    name: String,
}

/// The query of `/blocking?n=30` and `/count?n=3`.
#[derive(Deserialize)]
struct Params {
    n: Option<u32>,
}

impl App for Tour {
    fn init(ctx: &InitContext) -> Result<Self> {
        log::info!("tour initialised at {:?}", ctx.context_path());
        let mut tour: Tour = ctx.config()?;
        tour.name = ctx.name().to_owned();
        Ok(tour)
    }

    fn routes(routes: &mut Routes<Self>) {
        routes
            .get("/", |app: State<Self>| async move {
                format!("{} from Crabcat!\n", app.greeting)
            })
            .get("/greet/{name}", Self::greet)
            .post("/echo", Self::echo)
            .get("/config", |app: State<Self>| async move { Response::json(&*app) })
            .get("/blocking", blocking(Self::fibonacci))
            .get("/count", Self::count)
            .get("/sse/clock", Self::clock)
            .websocket("/ws/echo", Self::echo_socket);
    }

    fn destroy(&self) {
        log::info!("tour destroyed");
    }
}

impl Tour {
    async fn greet(app: State<Self>, Path(name): Path<String>) -> String {
        format!("{}, {name}!\n", app.greeting)
    }

    async fn echo(req: Request) -> Response {
        let content_type = req.header("content-type").unwrap_or("application/octet-stream");
        Response::bytes(content_type.to_owned(), req.body().to_vec())
    }

    /// CPU-bound work: runs on the container's blocking thread pool.
    fn fibonacci(Query(params): Query<Params>) -> Result<String> {
        let n = params.n.unwrap_or(20);
        if n > 40 {
            return Err(Error::bad_request("n must be at most 40"));
        }
        Ok(format!("fib({n}) = {}, computed on a blocking thread\n", fib(n)))
    }

    /// A body sent while it is produced: one line every 100 ms (the
    /// container's timer), `n` of them.
    async fn count(Query(params): Query<Params>) -> Response {
        let n = params.n.unwrap_or(10).min(1000);
        let lines = stream::unfold(1, move |i| async move {
            if i > n {
                return None;
            }
            if i > 1 {
                crabcat_sdk::sleep(Duration::from_millis(100)).await;
            }
            Some((Ok::<_, Error>(format!("{i}\n")), i + 1))
        });
        Response::stream("text/plain; charset=utf-8", lines)
    }

    /// One event a second, numbered; a client that reconnects with
    /// `Last-Event-ID` carries on from there.
    async fn clock(req: Request) -> Sse<impl Stream<Item = Event> + Send> {
        let first = req
            .header("last-event-id")
            .and_then(|id| id.parse::<u64>().ok())
            .map_or(0, |id| id + 1);
        Sse::new(stream::unfold(first, |n| async move {
            if n > 0 {
                crabcat_sdk::sleep(Duration::from_secs(1)).await;
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let event = Event::default()
                .id(n.to_string())
                .event("tick")
                .data(format!("{}", now.as_secs()));
            Some((event, n + 1))
        }))
    }

    /// Sends every message back as it came: text as text, binary as binary.
    async fn echo_socket(mut ws: WebSocket) {
        while let Some(message) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }
}

fn default_greeting() -> String {
    "Hello".to_owned()
}

fn fib(n: u32) -> u64 {
    if n < 2 { n.into() } else { fib(n - 1) + fib(n - 2) }
}

crabcat_sdk::export_app!(Tour);
