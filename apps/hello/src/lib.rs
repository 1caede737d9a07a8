//! # hello — the smallest Crabcat app
//!
//! Shows routing with path parameters, a config section reaching `init`,
//! an async and a blocking handler, request bodies, and panic containment.
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
//! curl localhost:8080/hello/sleep?ms=200          # slept 200 ms (on the container's timer)
//! curl localhost:8080/hello/panic                 # 500; the next request is fine
//! ```
//!
//! Config (`crabcat.toml`): `[apps.hello.config] greeting = "Howdy"`.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use crabcat_sdk::prelude::*;
use serde::Deserialize;

/// The `[apps.hello.config]` section.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HelloConfig {
    greeting: String,
}

impl Default for HelloConfig {
    fn default() -> Self {
        HelloConfig {
            greeting: "Hello".to_owned(),
        }
    }
}

struct Hello {
    name: String,
    config: HelloConfig,
}

impl App for Hello {
    fn init(ctx: &InitContext) -> Result<Self> {
        let config: HelloConfig = ctx.config()?;
        log::info!(
            "hello initialised at {:?} with greeting {:?}",
            ctx.context_path(),
            config.greeting
        );
        Ok(Hello {
            name: ctx.name().to_owned(),
            config,
        })
    }

    fn routes(routes: &mut Routes<Self>) {
        routes
            .get("/", Self::index)
            .get("/greet/{name}", Self::greet)
            .post("/echo", Self::echo)
            .get("/config", Self::config)
            .get("/blocking", blocking(Self::fibonacci))
            .get("/sleep", Self::sleep)
            .get("/panic", Self::panic);
    }

    fn destroy(&self) {
        log::info!("hello destroyed");
    }
}

impl Hello {
    async fn index(self: Arc<Self>, _req: Request) -> Response {
        Response::text(format!("{} from Crabcat!\n", self.config.greeting))
    }

    async fn greet(self: Arc<Self>, req: Request) -> Response {
        let name = req.param("name").unwrap_or("stranger");
        Response::text(format!("{}, {name}!\n", self.config.greeting))
    }

    async fn echo(self: Arc<Self>, req: Request) -> Response {
        let content_type = req
            .header("content-type")
            .unwrap_or("application/octet-stream")
            .to_owned();
        Response::bytes(content_type, req.body())
    }

    async fn config(self: Arc<Self>, _req: Request) -> Json<serde_json::Value> {
        Json(serde_json::json!({ "greeting": self.config.greeting, "app": self.name }))
    }

    /// CPU-bound work: runs on the container's blocking thread pool.
    fn fibonacci(&self, req: Request) -> Result<Response> {
        let n: u32 = req
            .query("n")
            .unwrap_or_else(|| "20".into())
            .parse()
            .map_err(|_| Error::bad_request("n must be a number"))?;
        if n > 40 {
            return Err(Error::bad_request("n must be at most 40"));
        }
        Ok(Response::text(format!(
            "fib({n}) = {}, computed on a blocking thread\n",
            fib(n)
        )))
    }

    /// Waits on the container's timer: `?ms=100`.
    async fn sleep(self: Arc<Self>, req: Request) -> Result<Response> {
        let ms: u64 = req.query("ms").unwrap_or_default().parse().unwrap_or(100).min(60_000);
        crabcat_sdk::sleep(Duration::from_millis(ms)).await;
        Ok(Response::text(format!("slept {ms} ms\n")))
    }

    async fn panic(self: Arc<Self>, _req: Request) -> Response {
        panic!("the /panic route panics on purpose");
    }
}

fn fib(n: u32) -> u64 {
    if n < 2 { n.into() } else { fib(n - 1) + fib(n - 2) }
}

crabcat_sdk::export_app!(Hello);
