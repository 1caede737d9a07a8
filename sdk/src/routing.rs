//! Routes: method + path pattern → handler.

use http::Method;

use crate::abi::{ROUTE_BLOCKING, ROUTE_WEBSOCKET};
use crate::handler::{Handler, HandlerFn};

struct Route<A> {
    method: Method,
    pattern: String,
    handler: HandlerFn<A>,
    flags: u32,
    max_body: u64,
}

/// The routes of an app, declared in [`App::routes`](crate::App::routes).
///
/// Patterns are paths inside the app (the container strips the context
/// path) with named parameters in braces, read with the
/// [`Path`](crate::Path) extractor (or [`Request::param`](crate::Request::param)):
/// `/greet/{name}`, or `/files/{*path}` for the rest of the path. A `GET`
/// route also answers `HEAD`. A path that matches but with another method
/// gets `405 Method Not Allowed` with an `Allow` header.
///
/// A handler is an async fn (or closure) whose arguments are
/// [extractors](crate::extract) and whose result is [`IntoResponse`](crate::IntoResponse);
/// wrap a plain fn in [`blocking`](crate::blocking) to have the container
/// run it on its blocking thread pool. See [`Handler`].
///
/// ```
/// # use crabcat_sdk::prelude::*;
/// # struct Notes;
/// # impl Notes {
/// #     async fn list() -> &'static str { "[]" }
/// #     async fn show(Path(id): Path<u64>) -> String { id.to_string() }
/// # }
/// fn routes(routes: &mut Routes<Notes>) {
///     routes
///         .get("/", || async { "notes\n" })
///         .get("/notes", Notes::list)
///         .get("/notes/{id}", Notes::show);
/// }
/// ```
pub struct Routes<A> {
    routes: Vec<Route<A>>,
}

impl<A: Send + Sync + 'static> Routes<A> {
    pub(crate) fn new() -> Self {
        Routes { routes: Vec::new() }
    }

    /// Adds a route for `method` and `pattern`.
    pub fn route<H, M>(&mut self, method: Method, pattern: &str, handler: H) -> &mut Self
    where
        H: Handler<A, M>,
    {
        let extra = handler.flags();
        let max_body = handler.max_body();
        let handler = handler.into_handler_fn();
        let flags = match handler {
            HandlerFn::Async(_) => extra,
            HandlerFn::Blocking(_) => extra | ROUTE_BLOCKING,
        };
        self.routes.push(Route {
            method,
            pattern: pattern.to_owned(),
            handler,
            flags,
            max_body,
        });
        self
    }

    /// Adds a WebSocket endpoint at `pattern`: a `GET` route whose handler
    /// takes a [`WebSocket`](crate::WebSocket) (as its last argument) and
    /// talks over it. Other extractors run first; a refusal is answered as
    /// plain HTTP. The container answers requests that are not a WebSocket
    /// handshake with `426 Upgrade Required`, and handshakes from an origin
    /// the app does not allow (`apps.NAME.websocket_origins`) with `403`.
    pub fn websocket<H: Handler<A, M>, M>(&mut self, pattern: &str, handler: H) -> &mut Self {
        self.route(Method::GET, pattern, handler);
        if let Some(route) = self.routes.last_mut() {
            route.flags |= ROUTE_WEBSOCKET;
        }
        self
    }

    /// Adds a `GET` (and `HEAD`) route.
    pub fn get<H: Handler<A, M>, M>(&mut self, pattern: &str, handler: H) -> &mut Self {
        self.route(Method::GET, pattern, handler)
    }

    /// Adds a `POST` route.
    pub fn post<H: Handler<A, M>, M>(&mut self, pattern: &str, handler: H) -> &mut Self {
        self.route(Method::POST, pattern, handler)
    }

    /// Adds a `PUT` route.
    pub fn put<H: Handler<A, M>, M>(&mut self, pattern: &str, handler: H) -> &mut Self {
        self.route(Method::PUT, pattern, handler)
    }

    /// Adds a `PATCH` route.
    pub fn patch<H: Handler<A, M>, M>(&mut self, pattern: &str, handler: H) -> &mut Self {
        self.route(Method::PATCH, pattern, handler)
    }

    /// Adds a `DELETE` route.
    pub fn delete<H: Handler<A, M>, M>(&mut self, pattern: &str, handler: H) -> &mut Self {
        self.route(Method::DELETE, pattern, handler)
    }

    pub(crate) fn table(&self) -> impl Iterator<Item = (&str, &str, u32, u64)> {
        self.routes
            .iter()
            .map(|r| (r.method.as_str(), r.pattern.as_str(), r.flags, r.max_body))
    }

    pub(crate) fn handler(&self, index: u32) -> Option<&HandlerFn<A>> {
        self.routes.get(usize::try_from(index).ok()?).map(|r| &r.handler)
    }
}
