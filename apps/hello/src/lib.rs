//! # hello — the smallest Crabcat app
//!
//! Shows handlers that take extractors (`State`, `Path`, `Query`, the
//! `Request`), a config section deserialised straight into the app, an async
//! and a blocking handler, request bodies, a `400` problem document, and
//! panic containment.
//!
//! Build and deploy (from the repository root):
//!
//! ```text
//! cargo build -p hello && cp target/debug/libhello.so deploy/.hello.so.tmp && mv deploy/.hello.so.tmp deploy/hello.so
//! ```
//!
//! Then:
//!
//! ```text
//! curl localhost:8080/hello/                      # Hello from Crabcat!
//! curl localhost:8080/hello/greet/Ferris          # Hello, Ferris!
//! curl -d 'some bytes' localhost:8080/hello/echo  # some bytes
//! curl localhost:8080/hello/config                # {"app":"hello","greeting":"Hello"}
//! curl localhost:8080/hello/blocking?n=30         # fib(30) = 832040, computed on a blocking thread
//! curl localhost:8080/hello/blocking?n=x          # 400 {"type":"about:blank","title":"Bad Request","status":400,"detail":"invalid query string: …"}
//! curl localhost:8080/hello/sleep?ms=200          # slept 200 ms (on the container's timer)
//! curl localhost:8080/hello/panic                 # 500; the next request is fine
//! curl -N localhost:8080/hello/sse/clock          # one Server-Sent Event a second
//! websocat ws://localhost:8080/hello/ws/echo      # echoes text and binary messages
//! ```
//!
//! Config (`crabcat.toml`): `[apps.hello.config] greeting = "Howdy"`.

#![forbid(unsafe_code)]

use std::time::Duration;

use crabcat_sdk::futures_util::stream;
use crabcat_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The app: its config section deserialises into it, and `/config` shows it.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Hello {
    #[serde(default = "hello")]
    greeting: String,
    #[serde(skip_deserializing, rename = "app")]
    name: String,
}

/// The query of `/blocking?n=30` and `/sleep?ms=200`.
#[derive(Deserialize)]
struct Params {
    n: Option<u32>,
    ms: Option<u64>,
}

impl App for Hello {
    fn init(ctx: &InitContext) -> Result<Self> {
        log::info!("hello initialised at {:?}", ctx.context_path());
        let mut hello: Hello = ctx.config()?;
        hello.name = ctx.name().to_owned();
        Ok(hello)
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
            .get("/sleep", Self::sleep)
            .get("/panic", Self::panic)
            .get("/sse/clock", Self::clock)
            .websocket("/ws/echo", Self::echo_socket);
    }

    fn destroy(&self) {
        log::info!("hello destroyed");
    }
}

impl Hello {
    async fn greet(app: State<Self>, Path(name): Path<String>) -> String {
        format!("{}, {name}!\n", app.greeting)
    }

    async fn echo(req: Request) -> Response {
        let content_type = req.header("content-type").unwrap_or("application/octet-stream");
        Response::bytes(content_type.to_owned(), req.body())
    }

    /// CPU-bound work: runs on the container's blocking thread pool.
    fn fibonacci(Query(params): Query<Params>) -> Result<String> {
        let n = params.n.unwrap_or(20);
        if n > 40 {
            return Err(Error::bad_request("n must be at most 40"));
        }
        Ok(format!("fib({n}) = {}, computed on a blocking thread\n", fib(n)))
    }

    /// Waits on the container's timer.
    async fn sleep(Query(params): Query<Params>) -> String {
        let ms = params.ms.unwrap_or(100).min(60_000);
        crabcat_sdk::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms\n")
    }

    async fn panic() -> Response {
        panic!("the /panic route panics on purpose");
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

fn hello() -> String {
    "Hello".to_owned()
}

fn fib(n: u32) -> u64 {
    if n < 2 { n.into() } else { fib(n - 1) + fib(n - 2) }
}

crabcat_sdk::export_app!(Hello);
