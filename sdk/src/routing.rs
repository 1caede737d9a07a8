//! Routes: method + path pattern → handler.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use http::Method;

use crate::abi::{FfiFuture, ROUTE_BLOCKING, ROUTE_TRANSACTIONAL};
use crate::ffi::entry::respond;
use crate::ffi::host::ResponseSink;
use crate::request::Request;
use crate::response::{IntoResponse, Response};

#[doc(hidden)]
pub type AsyncFn<A> = Box<dyn Fn(Arc<A>, Request, ResponseSink) -> FfiFuture<u32> + Send + Sync>;
#[doc(hidden)]
pub type BlockingFn<A> = Box<dyn Fn(&A, Request) -> Response + Send + Sync>;

/// A type-erased handler; `pub` only because [`Handler`] names it.
#[doc(hidden)]
pub enum HandlerFn<A> {
    Async(AsyncFn<A>),
    Blocking(BlockingFn<A>),
}

struct Route<A> {
    method: Method,
    pattern: String,
    handler: HandlerFn<A>,
    flags: u32,
}

/// The routes of an app, declared in [`App::routes`](crate::App::routes).
///
/// Patterns are paths inside the app (the container strips the context
/// path) with named parameters in braces, read with
/// [`Request::param`]: `/greet/{name}`, or `/files/{*path}` for the rest of
/// the path. A `GET` route also answers `HEAD`. A path that matches but
/// with another method gets `405 Method Not Allowed` with an `Allow` header.
///
/// An async handler is an `async fn(self: Arc<Self>, Request) -> impl IntoResponse`;
/// wrap a synchronous `fn(&self, Request) -> impl IntoResponse` in
/// [`blocking`] to have the container run it on its blocking thread pool.
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
        });
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

    pub(crate) fn table(&self) -> impl Iterator<Item = (&str, &str, u32)> {
        self.routes
            .iter()
            .map(|r| (r.method.as_str(), r.pattern.as_str(), r.flags))
    }

    pub(crate) fn handler(&self, index: u32) -> Option<&HandlerFn<A>> {
        self.routes.get(usize::try_from(index).ok()?).map(|r| &r.handler)
    }
}

/// Something that can handle requests for app `A`: an async function
/// `Fn(Arc<A>, Request) -> impl Future<Output = impl IntoResponse>`, or a
/// [`Blocking`] one. `M` only tells the two apart.
pub trait Handler<A, M>: Send + Sync + 'static {
    #[doc(hidden)]
    fn into_handler_fn(self) -> HandlerFn<A>;

    #[doc(hidden)]
    fn flags(&self) -> u32 {
        0
    }
}

#[doc(hidden)]
pub struct AsyncMarker<Fut>(PhantomData<Fut>);

#[doc(hidden)]
pub struct BlockingMarker<R>(PhantomData<R>);

impl<A, F, Fut> Handler<A, AsyncMarker<Fut>> for F
where
    A: Send + Sync + 'static,
    F: Fn(Arc<A>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoResponse,
{
    fn into_handler_fn(self) -> HandlerFn<A> {
        // One allocation per request: the FFI future wraps the handler's
        // future directly.
        HandlerFn::Async(Box::new(move |app, request, sink| respond(self(app, request), sink)))
    }
}

/// A synchronous handler that the container runs on its blocking thread
/// pool (the servlet-thread model), made with [`blocking`].
pub struct Blocking<F>(F);

/// Marks a synchronous `fn(&self, Request) -> impl IntoResponse` as a
/// blocking handler: `routes.get("/report", blocking(Self::report))`.
/// Use it for CPU-heavy or blocking work so it does not stall async handlers.
pub fn blocking<F>(handler: F) -> Blocking<F> {
    Blocking(handler)
}

impl<A, F, R> Handler<A, BlockingMarker<R>> for Blocking<F>
where
    A: Send + Sync + 'static,
    F: Fn(&A, Request) -> R + Send + Sync + 'static,
    R: IntoResponse + 'static,
{
    fn into_handler_fn(self) -> HandlerFn<A> {
        let f = self.0;
        HandlerFn::Blocking(Box::new(move |app, request| f(app, request).into_response()))
    }
}

/// A handler the container runs inside one transaction, made with
/// [`transactional`].
pub struct Transactional<H>(H);

/// Runs `handler` inside a container-managed transaction on the app's
/// default datasource: every query made through
/// [`Request::db`](crate::Request::db) joins it; the container commits when
/// the response status is below 400 and rolls back on an error status, an
/// `Err` or a panic. Wraps async and [`blocking`] handlers alike:
/// `routes.post("/transfer", transactional(Self::transfer))`.
pub fn transactional<H>(handler: H) -> Transactional<H> {
    Transactional(handler)
}

#[doc(hidden)]
pub struct TransactionalMarker<M>(PhantomData<M>);

impl<A, M, H> Handler<A, TransactionalMarker<M>> for Transactional<H>
where
    H: Handler<A, M>,
    M: 'static,
{
    fn into_handler_fn(self) -> HandlerFn<A> {
        self.0.into_handler_fn()
    }

    fn flags(&self) -> u32 {
        self.0.flags() | ROUTE_TRANSACTIONAL
    }
}
