//! The app trait, its init context, and a started instance.

use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::handler::HandlerFn;
use crate::request::Request;
use crate::response::Response;
use crate::routing::Routes;

/// A Crabcat application: created by [`init`](App::init), serving the
/// [`routes`](App::routes) it declares, and told to clean up in
/// [`destroy`](App::destroy).
///
/// The container creates one instance per deployment and shares it between
/// all requests, so the type must be `Send + Sync`; handlers reach it with
/// the [`State<Self>`](crate::State) extractor.
pub trait App: Sized + Send + Sync + 'static {
    /// Creates the app. Runs once per deployment on a blocking thread, so it
    /// may do blocking work.
    ///
    /// # Errors
    /// An error fails the deployment: the app is marked `failed` with the
    /// error's message, and the container goes on serving every other app.
    fn init(ctx: &InitContext) -> Result<Self>;

    /// The app's database migrations, applied by the container in order
    /// (each once, checksummed) on its default datasource before `init`.
    /// An applied migration must never be edited: add a new one.
    const MIGRATIONS: &'static [Migration] = &[];

    /// Declares the routes, e.g. `routes.get("/greet/{name}", Self::greet)`;
    /// see [`Routes`].
    fn routes(routes: &mut Routes<Self>);

    /// Called exactly once when the app is undeployed, reloaded or the
    /// container shuts down, after its last request finished. The default
    /// does nothing; the instance is dropped right after.
    fn destroy(&self) {}
}

/// One schema migration: a version (applied in ascending order), a
/// description, and SQL (several statements allowed), usually from a file:
///
/// ```
/// # use crabcat_sdk::Migration;
/// const MIGRATIONS: &[Migration] = &[
///     Migration::new(1, "create entries", "CREATE TABLE entries (id INTEGER PRIMARY KEY, body TEXT)")
///         .postgres("CREATE TABLE entries (id BIGSERIAL PRIMARY KEY, body TEXT)"),
/// ];
/// ```
///
/// Where the backends disagree (auto-increment keys, mostly), give a
/// backend its own variant with [`postgres`](Self::postgres),
/// [`sqlite`](Self::sqlite) or [`mysql`](Self::mysql); the checksum covers
/// the SQL the backend runs. A backend without a variant runs [`sql`](Self::sql).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Applied in ascending order; never reuse or change one.
    pub version: i64,
    /// Shown in logs and errors.
    pub description: &'static str,
    /// The SQL every backend runs unless it has a variant of its own.
    pub sql: &'static str,
    /// What PostgreSQL runs instead, if set.
    pub postgres: Option<&'static str>,
    /// What SQLite runs instead, if set.
    pub sqlite: Option<&'static str>,
    /// What MySQL/MariaDB runs instead, if set.
    pub mysql: Option<&'static str>,
}

impl Migration {
    /// A migration.
    pub const fn new(version: i64, description: &'static str, sql: &'static str) -> Self {
        Migration {
            version,
            description,
            sql,
            postgres: None,
            sqlite: None,
            mysql: None,
        }
    }

    /// The SQL PostgreSQL runs instead of [`sql`](Self::sql).
    pub const fn postgres(mut self, sql: &'static str) -> Self {
        self.postgres = Some(sql);
        self
    }

    /// The SQL SQLite runs instead of [`sql`](Self::sql).
    pub const fn sqlite(mut self, sql: &'static str) -> Self {
        self.sqlite = Some(sql);
        self
    }

    /// The SQL MySQL and MariaDB run instead of [`sql`](Self::sql). Their
    /// DDL is not transactional: a migration that fails halfway keeps what
    /// ran before the failure, so prefer one statement per migration (or
    /// `IF NOT EXISTS`).
    pub const fn mysql(mut self, sql: &'static str) -> Self {
        self.mysql = Some(sql);
        self
    }
}

/// What [`App::init`] gets from the container.
#[derive(Debug, Deserialize)]
pub struct InitContext {
    name: String,
    context_path: String,
    #[serde(default)]
    config: serde_json::Value,
    #[serde(default)]
    max_log_level: Option<String>,
}

impl InitContext {
    /// The deployment name of the app (its file name without extension).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the app is mounted, e.g. `/hello`; empty when mounted at `/`.
    /// Prefix links to your own pages with it.
    pub fn context_path(&self) -> &str {
        &self.context_path
    }

    /// The app's configuration section (`[apps.NAME.config]` in the
    /// container's config), deserialised into `T`. A missing section is an
    /// empty table, so a `T` with `#[serde(default)]` gets its defaults.
    ///
    /// # Errors
    /// If the section does not match `T`.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&self.config).map_err(|e| Error::internal(format!("invalid config for app {}: {e}", self.name)))
    }

    /// The raw configuration section.
    pub fn config_value(&self) -> &serde_json::Value {
        &self.config
    }
}

/// A running instance: the app and its handlers, indexed by route number.
pub(crate) struct Started<A> {
    app: Arc<A>,
    routes: Routes<A>,
}

impl<A: App> Started<A> {
    /// Parses the host's init document, runs `A::init` and collects routes.
    pub(crate) fn start(init_document: &[u8]) -> Result<Self> {
        let ctx: InitContext = serde_json::from_slice(init_document)
            .map_err(|e| Error::internal(format!("bad init document from the host: {e}")))?;
        crate::logging::install(ctx.max_log_level.as_deref());
        let app = Arc::new(A::init(&ctx)?);
        let mut routes = Routes::new();
        A::routes(&mut routes);
        Ok(Started { app, routes })
    }

    pub(crate) fn route_table(&self) -> impl Iterator<Item = (&str, &str, u32, u64)> {
        self.routes.table()
    }

    pub(crate) fn call_async(
        &self,
        route: u32,
        request: Request,
        sink: crate::ffi::host::ResponseSink,
    ) -> Option<crate::abi::FfiFuture<u32>> {
        match self.routes.handler(route)? {
            HandlerFn::Async(f) => Some(f(&self.app, request, sink)),
            HandlerFn::Blocking(_) => None,
        }
    }

    pub(crate) fn call_blocking(&self, route: u32, request: Request) -> Option<Response> {
        match self.routes.handler(route)? {
            HandlerFn::Blocking(f) => Some(f(&self.app, request)),
            HandlerFn::Async(_) => None,
        }
    }

    pub(crate) fn destroy(self) {
        self.app.destroy();
    }
}
