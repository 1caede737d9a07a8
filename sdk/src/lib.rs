//! # crabcat-sdk
//!
//! The API for writing [Crabcat](https://example.invalid/crabcat) application
//! modules: Rust crates compiled as `cdylib` shared libraries that the
//! `crabcat` container loads from its `deploy/` directory, initialises, routes
//! HTTP requests to, and destroys — like servlets in a servlet container.
//!
//! ## A complete app
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "hello"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! crabcat-sdk = { path = "../../sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! #![forbid(unsafe_code)]
//! use std::sync::Arc;
//! use crabcat_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize, Default)]
//! #[serde(default)]
//! struct Config {
//!     greeting: Option<String>,
//! }
//!
//! struct Hello {
//!     greeting: String,
//! }
//!
//! impl App for Hello {
//!     fn init(ctx: &InitContext) -> Result<Self> {
//!         let config: Config = ctx.config()?;
//!         log::info!("hello is starting");
//!         Ok(Hello { greeting: config.greeting.unwrap_or_else(|| "Hello".into()) })
//!     }
//!
//!     fn routes(routes: &mut Routes<Self>) {
//!         routes
//!             .get("/greet/{name}", Self::greet)
//!             .post("/echo", Self::echo)
//!             .get("/report", blocking(Self::report));
//!     }
//!
//!     fn destroy(&self) {
//!         log::info!("hello is stopping");
//!     }
//! }
//!
//! impl Hello {
//!     async fn greet(self: Arc<Self>, req: Request) -> Response {
//!         let name = req.param("name").unwrap_or("world");
//!         Response::text(format!("{}, {name}!", self.greeting))
//!     }
//!
//!     async fn echo(self: Arc<Self>, req: Request) -> Result<Response> {
//!         Ok(Response::text(req.text()?))
//!     }
//!
//!     // Runs on the container's blocking thread pool.
//!     fn report(&self, _req: Request) -> Json<serde_json::Value> {
//!         Json(serde_json::json!({ "greeting": self.greeting }))
//!     }
//! }
//!
//! crabcat_sdk::export_app!(Hello);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release` and copy `target/release/libhello.so`
//! to the container's `deploy/` directory as `hello.so` (write to a temporary
//! name, then rename): it answers at `http://127.0.0.1:8080/hello/greet/you`.
//!
//! ## Rules for app authors
//!
//! 1. Use [`export_app!`]; never write `extern "C"` yourself.
//! 2. Build with `panic = "unwind"` (the default). The container refuses
//!    modules built with `panic = "abort"`: any panic in them would abort the
//!    whole container. With unwinding, a panicking handler becomes a `500`
//!    and a log line, and the app goes on serving.
//! 3. No tokio, sqlx, reqwest or hyper in a module: the module has its own
//!    copy of tokio with no reactor. Use [`sleep`] and [`spawn`], which run on
//!    the container's runtime. Runtime-agnostic crates (`futures`, serde,
//!    pure computation) are fine.
//! 4. No threads, thread pools or runtimes in a module; they pin it in memory.
//! 5. Keep nothing that must survive a reload in statics: each load gets
//!    fresh statics.
//! 6. Log with the [`log`] crate's macros (re-exported here); records go to
//!    the container's log, tagged with the app name.
//!
//! ## Layout
//!
//! * [`App`], [`InitContext`]: the lifecycle (`app`).
//! * [`Routes`], [`blocking`]: method + path pattern → handler (`routing`).
//! * [`Request`], [`Response`], [`IntoResponse`], [`Error`]: the HTTP side.
//! * [`db`]: the data API (`req.db().query("... $1").bind(x).fetch_all()`),
//!   transactions, and [`transactional`] routes; [`Migration`]s run by the
//!   container before `init` (`App::MIGRATIONS`).
//! * [`abi`]: the `#[repr(C)]` contract with the container; [`ffi`]: the only
//!   `unsafe` code, behind [`export_app!`].

#![deny(missing_docs)]

pub mod abi;
mod app;
pub mod db;
mod error;
#[doc(hidden)]
pub mod ffi;
mod logging;
mod request;
mod response;
mod routing;

pub use app::{App, InitContext, Migration};
pub use db::{Db, DbError, DbErrorKind, Done, Row, Transaction, Value};
pub use error::{Error, Result};
pub use ffi::host::{sleep, spawn};
pub use http::{Method, StatusCode};
pub use log;
pub use request::Request;
pub use response::{Html, IntoResponse, Json, Response, html_escape};
pub use routing::{Blocking, Handler, Routes, Transactional, blocking, transactional};

/// Everything an app needs: `use crabcat_sdk::prelude::*;`
pub mod prelude {
    pub use crate::log;
    pub use crate::{
        App, DbError, DbErrorKind, Error, Html, InitContext, IntoResponse, Json, Method, Migration, Request, Response,
        Result, Routes, Row, StatusCode, blocking, html_escape, transactional,
    };
}
