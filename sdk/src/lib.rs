//! # crabcat-sdk
//!
//! The API for writing [Crabcat](https://example.invalid/crabcat) application
//! modules: Rust crates compiled as `cdylib` shared libraries that the
//! `crabcat` container loads from its `deploy/` directory, initialises, routes
//! HTTP requests to, and destroys — like servlets in a servlet container.
//!
//! ## A complete app
//!
//! An app is a crate with `crate-type = ["cdylib"]` that depends on
//! `crabcat-sdk`. The app-author guide, [`guide`] (also the chapter
//! "Writing an app" of the book in `docs/`), shows how to create one in a
//! clone of the repository, build it, deploy it and call it, and lists the
//! [rules for app authors](crate::guide#rules-for-app-authors). Its
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
//! struct Greeter {
//!     greeting: String,
//! }
//!
//! impl App for Greeter {
//!     fn init(ctx: &InitContext) -> Result<Self> {
//!         let config: Config = ctx.config()?;
//!         log::info!("greeter is starting");
//!         Ok(Greeter { greeting: config.greeting.unwrap_or_else(|| "Hello".into()) })
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
//!         log::info!("greeter is stopping");
//!     }
//! }
//!
//! impl Greeter {
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
//! crabcat_sdk::export_app!(Greeter);
//! # fn main() {}
//! ```
//!
//! Deployed as `greeter.so`, it answers at
//! `http://127.0.0.1:8080/greeter/greet/you`. Host services: [`sleep`] and
//! [`spawn`]; logging: the [`log`] macros, re-exported here.
//!
//! ## Layout
//!
//! * [`guide`]: the app-author guide.
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

/// The app-author guide: creating, building and deploying an app, the SDK
/// at a glance, and the rules for app authors.
///
/// This is the chapter "Writing an app" of the Crabcat book (`docs/src/`);
/// its links to other chapters work in the book, which
/// `scripts/check-docs.sh` builds.
#[doc = include_str!("../../docs/src/writing-an-app.md")]
pub mod guide {}

// The Rust examples of the README and of the book's Data chapter, compiled
// (not run) by `cargo test --doc`, so they keep up with the SDK.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
#[cfg(doctest)]
#[doc = include_str!("../../docs/src/data.md")]
pub struct DataChapterDoctests;

/// Everything an app needs: `use crabcat_sdk::prelude::*;`
pub mod prelude {
    pub use crate::log;
    pub use crate::{
        App, DbError, DbErrorKind, Error, Html, InitContext, IntoResponse, Json, Method, Migration, Request, Response,
        Result, Routes, Row, StatusCode, blocking, html_escape, transactional,
    };
}
