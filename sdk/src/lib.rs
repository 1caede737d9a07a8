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
//! use crabcat_sdk::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Config {
//!     #[serde(default = "hello")]
//!     greeting: String,
//! }
//!
//! fn hello() -> String {
//!     "Hello".into()
//! }
//!
//! struct Notes {
//!     greeting: String,
//! }
//!
//! #[derive(Deserialize, Serialize)]
//! struct Note {
//!     text: String,
//! }
//!
//! impl App for Notes {
//!     const MIGRATIONS: &'static [Migration] =
//!         &[Migration::new(1, "create notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
//!             .postgres("CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL)")];
//!
//!     fn init(ctx: &InitContext) -> Result<Self> {
//!         let config: Config = ctx.config()?;
//!         log::info!("notes is starting");
//!         Ok(Notes { greeting: config.greeting })
//!     }
//!
//!     fn routes(routes: &mut Routes<Self>) {
//!         routes
//!             .get("/greet/{name}", Self::greet)
//!             .post("/notes", transactional(Self::add))
//!             .get("/notes/{id}", Self::show)
//!             .get("/count", blocking(Self::count));
//!     }
//!
//!     fn destroy(&self) {
//!         log::info!("notes is stopping");
//!     }
//! }
//!
//! impl Notes {
//!     /// `GET /greet/Ferris`: the app's state and a path parameter.
//!     async fn greet(app: State<Self>, Path(name): Path<String>) -> String {
//!         format!("{}, {name}!", app.greeting)
//!     }
//!
//!     /// `POST /notes` with `{"text": "…"}`: `201` and the new id. A body
//!     /// that is not such JSON never gets here: the client gets a 4xx
//!     /// `application/problem+json` answer. In a transaction: `Ok` commits.
//!     async fn add(Json(note): Json<Note>, req: Request) -> Result<(StatusCode, String)> {
//!         if note.text.trim().is_empty() {
//!             return Err(Error::unprocessable("text is required")); // rolls back
//!         }
//!         let id: i64 = req.db()
//!             .query("INSERT INTO notes (text) VALUES ($1) RETURNING id")
//!             .bind(&note.text)
//!             .fetch_one_as()
//!             .await?;
//!         Ok((StatusCode::CREATED, id.to_string()))
//!     }
//!
//!     /// `GET /notes/7`: the row as JSON, or a `404` problem (`?` on a
//!     /// `DbError` keeps its status).
//!     async fn show(Path(id): Path<i64>, req: Request) -> Result<Json<Note>> {
//!         let note = req.db().query("SELECT text FROM notes WHERE id = $1").bind(id).fetch_one_as().await?;
//!         Ok(Json(note))
//!     }
//!
//!     /// Runs on the container's blocking thread pool.
//!     fn count(req: Request) -> Result<String> {
//!         let n: i64 = req.db().query("SELECT COUNT(*) FROM notes").fetch_one_as_blocking()?;
//!         Ok(format!("{n} notes"))
//!     }
//! }
//!
//! crabcat_sdk::export_app!(Notes);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release` and copy `target/release/libnotes.so`
//! to the container's `deploy/` directory as `notes.so` (write to a temporary
//! name, then rename): it answers at `http://127.0.0.1:8080/notes/greet/you`.
//!
//! Handlers are async fns whose arguments are [extractors](extract) —
//! [`State`], [`Path`], [`Query`], [`Json`], [`Form`], … and [`Request`]
//! last — and whose result is anything [`IntoResponse`]. Errors, including
//! refused requests, answer with an RFC 9457 problem document (see
//! [`Error`]). Rows decode into your own types with serde
//! ([`Row::decode`], `fetch_one_as`). The older handler form,
//! `async fn h(self: Arc<Self>, req: Request)`, still works.
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
//! The app-author guide, [`guide`] (also the chapter "Writing an app" of
//! the book in `docs/`), shows how to create an app in a clone of the
//! repository, build it, deploy it and call it.
//!
//! ## Layout
//!
//! * [`App`], [`InitContext`]: the lifecycle (`app`).
//! * [`Routes`]: method + path pattern → handler (`routing`).
//! * [`Handler`], [`blocking`], [`transactional`]: the forms a handler takes
//!   and how each is called (`handler`).
//! * [`extract`]: handler arguments built from the request ([`State`],
//!   [`Path`], [`Query`], [`Json`], [`Form`], [`JsonOrForm`]) and
//!   [`Rejection`].
//! * [`Request`], [`Response`], [`IntoResponse`]: the HTTP side;
//!   [`Error`]: errors as problem documents (`error`).
//! * [`db`]: the data API (`req.db().query("... $1").bind(x).fetch_all_as()`),
//!   rows decoded with serde, transactions; [`Migration`]s run by the
//!   container before `init` (`App::MIGRATIONS`).
//! * [`abi`]: the `#[repr(C)]` contract with the container; [`ffi`]: the only
//!   `unsafe` code, behind [`export_app!`].

#![deny(missing_docs)]

pub mod abi;
mod app;
pub mod db;
mod error;
pub mod extract;
#[doc(hidden)]
pub mod ffi;
mod handler;
mod logging;
mod request;
mod response;
mod routing;
pub mod session;
pub mod sse;
mod ws;

pub use app::{App, InitContext, Migration};
pub use db::{Db, DbError, DbErrorKind, Done, Row, Transaction, Value};
pub use error::{Error, PROBLEM_JSON, Result};
pub use extract::{BodyStream, Form, FromRequest, FromRequestRef, JsonOrForm, Path, Query, Rejection, State};
pub use ffi::host::{sleep, spawn};
/// Streams for [`Response::stream`] and [`Sse`]: `futures_util::stream::unfold`, `iter`, …
pub use futures_util;
pub use handler::{Blocking, BodyLimit, Handler, Transactional, blocking, body_limit, transactional};
pub use http::{Method, StatusCode};
pub use log;
pub use request::Request;
pub use response::{Html, IntoBody, IntoResponse, Json, Response, html_escape};
pub use routing::Routes;
pub use session::{Session, SessionError};
pub use sse::{Event, Sse};
pub use ws::{Hub, Message, WebSocket, hub};

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
#[cfg(doctest)]
#[doc = include_str!("../../docs/src/realtime.md")]
pub struct RealtimeChapterDoctests;

/// Everything an app needs: `use crabcat_sdk::prelude::*;`
pub mod prelude {
    pub use crate::log;
    pub use crate::{
        App, BodyStream, DbError, DbErrorKind, Error, Event, Form, Html, InitContext, IntoResponse, Json, JsonOrForm,
        Message, Method, Migration, Path, Query, Rejection, Request, Response, Result, Routes, Row, Session,
        SessionError, Sse, State, StatusCode, WebSocket, blocking, body_limit, html_escape, hub, transactional,
    };
    pub use futures_util::{Stream, StreamExt as _};
}
