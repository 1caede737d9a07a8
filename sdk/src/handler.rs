//! Handlers: the functions routes call, and how each kind is called.
//!
//! * an async fn of 0 to 12 [extractors](crate::extract), the last of which
//!   may be the [`Request`] itself: `async fn show(Path(id): Path<u64>, req: Request)`;
//! * the same as a plain fn wrapped in [`blocking`], run on the container's
//!   blocking thread pool;
//! * the older forms, still accepted: `async fn h(self: Arc<Self>, req: Request)`
//!   (`Arc<Self>` is an extractor too, so a method may also take
//!   `self: Arc<Self>` and then extractors), and `fn h(&self, req: Request)`
//!   in [`blocking`];
//! * any of them in [`transactional`], run in one container-managed
//!   transaction that an `Ok` commits and an `Err` rolls back.

use std::future::{Future, ready};
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::FutureExt as _;

use crate::abi::{FfiFuture, ROUTE_TRANSACTIONAL};
use crate::error::Error;
use crate::extract::{FromRequest, FromRequestRef};
use crate::ffi::entry::respond;
use crate::ffi::host::ResponseSink;
use crate::request::Request;
use crate::response::{IntoResponse, Response};

#[doc(hidden)]
pub type AsyncFn<A> = Box<dyn Fn(&Arc<A>, Request, ResponseSink) -> FfiFuture<u32> + Send + Sync>;
#[doc(hidden)]
pub type BlockingFn<A> = Box<dyn Fn(&Arc<A>, Request) -> Response + Send + Sync>;

/// A type-erased handler; `pub` only because [`Handler`] names it.
#[doc(hidden)]
pub enum HandlerFn<A> {
    Async(AsyncFn<A>),
    Blocking(BlockingFn<A>),
}

/// Something that can handle requests for app `A`; see the
/// [module docs](crate::extract) for the forms it takes. `M` only tells the
/// forms apart; it is inferred.
///
/// An async fn of extractors, with or without the app:
///
/// ```
/// use crabcat_sdk::prelude::*;
///
/// struct Hello {
///     greeting: String,
/// }
///
/// impl App for Hello {
///     fn init(_ctx: &InitContext) -> Result<Self> {
///         Ok(Hello { greeting: "Hello".into() })
///     }
///
///     fn routes(routes: &mut Routes<Self>) {
///         routes
///             .get("/", || async { "Hello from Crabcat!\n" })
///             .get("/greet/{name}", Self::greet)
///             .get("/sum", blocking(Self::sum));
///     }
/// }
///
/// #[derive(serde::Deserialize)]
/// struct Terms {
///     a: i64,
///     b: i64,
/// }
///
/// impl Hello {
///     async fn greet(app: State<Self>, Path(name): Path<String>) -> String {
///         format!("{}, {name}!\n", app.greeting)
///     }
///
///     // Runs on the container's blocking thread pool.
///     fn sum(Query(terms): Query<Terms>) -> String {
///         (terms.a + terms.b).to_string()
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a handler of app `{A}`",
    note = "a handler is an async fn (or a plain fn in `blocking(..)`) of up to 12 extractors \
            (`State<A>`, `Path<T>`, `Query<T>`, `Json<T>`, `Form<T>`, …; `Request` only last) \
            returning `impl IntoResponse`",
    note = "in `transactional(..)` it must return a `Result`: `Ok` commits, `Err` rolls back"
)]
pub trait Handler<A, M>: Send + Sync + 'static {
    /// What the function returns.
    #[doc(hidden)]
    type Output;

    /// The handler, concluded as its kind requires.
    #[doc(hidden)]
    fn into_handler_fn(self) -> HandlerFn<A>;

    /// The handler, its output turned into a response by `C`.
    #[doc(hidden)]
    fn into_handler_fn_with<C: Conclude<Self::Output>>(self) -> HandlerFn<A>;

    #[doc(hidden)]
    fn flags(&self) -> u32 {
        0
    }

    /// The largest request body the route accepts; 0 for the container's default.
    #[doc(hidden)]
    fn max_body(&self) -> u64 {
        0
    }
}

/// Turns what a handler returned into the response; `pub` only because
/// [`Handler`] names it.
#[doc(hidden)]
pub trait Conclude<O>: 'static {
    fn conclude(output: O) -> Response;
}

/// The usual conclusion: [`IntoResponse`].
#[doc(hidden)]
pub enum AsResponse {}

impl<O: IntoResponse> Conclude<O> for AsResponse {
    fn conclude(output: O) -> Response {
        output.into_response()
    }
}

/// The answer to a refused request.
fn reject(rejection: impl IntoResponse, sink: ResponseSink) -> FfiFuture<u32> {
    respond(ready(rejection.into_response()), sink)
}

#[doc(hidden)]
pub struct BlockingMarker<R>(PhantomData<R>);

/// An async fn of no arguments.
impl<A, F, Fut> Handler<A, ()> for F
where
    A: Send + Sync + 'static,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoResponse,
{
    type Output = Fut::Output;

    fn into_handler_fn(self) -> HandlerFn<A> {
        self.into_handler_fn_with::<AsResponse>()
    }

    fn into_handler_fn_with<C: Conclude<Fut::Output>>(self) -> HandlerFn<A> {
        HandlerFn::Async(Box::new(move |_app, request, sink| {
            drop(request);
            respond(self().map(C::conclude), sink)
        }))
    }
}

/// An async fn of extractors: every argument but the last is
/// [`FromRequestRef`], the last is [`FromRequest`] (which includes
/// [`Request`]). Extraction runs in argument order; the first rejection is
/// the answer.
macro_rules! async_handler {
    ([$($ty:ident),*], $last:ident) => {
        #[allow(non_snake_case)]
        impl<A, F, Fut, M, $($ty,)* $last> Handler<A, (M, $($ty,)* $last,)> for F
        where
            A: Send + Sync + 'static,
            F: Fn($($ty,)* $last) -> Fut + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoResponse,
            $($ty: FromRequestRef<A>,)*
            $last: FromRequest<A, M>,
        {
            type Output = Fut::Output;

            fn into_handler_fn(self) -> HandlerFn<A> {
                self.into_handler_fn_with::<AsResponse>()
            }

            fn into_handler_fn_with<C: Conclude<Fut::Output>>(self) -> HandlerFn<A> {
                HandlerFn::Async(Box::new(move |app, request, sink| {
                    $(
                        let $ty = match $ty::from_request_ref(&request, app) {
                            Ok(value) => value,
                            Err(rejection) => return reject(rejection, sink),
                        };
                    )*
                    let $last = match $last::from_request(request, app) {
                        Ok(value) => value,
                        Err(rejection) => return reject(rejection, sink),
                    };
                    respond(self($($ty,)* $last).map(C::conclude), sink)
                }))
            }

            fn flags(&self) -> u32 {
                <$last as FromRequest<A, M>>::ROUTE_FLAGS
            }
        }
    };
}

/// A synchronous handler that the container runs on its blocking thread
/// pool (the servlet-thread model), made with [`blocking`].
pub struct Blocking<F>(F);

/// Marks a synchronous function as a blocking handler:
/// `routes.get("/report", blocking(Self::report))`. It takes the same
/// extractors as an async handler (`fn report(app: State<Self>, req: Request)`),
/// or is the older `fn report(&self, req: Request)`.
///
/// Use it for CPU-heavy or blocking work so it does not stall async
/// handlers, and use the `_blocking` variants of the [`db`](crate::db) calls
/// in it.
pub fn blocking<F>(handler: F) -> Blocking<F> {
    Blocking(handler)
}

/// The older form: `fn h(&self, req: Request)`.
impl<A, F, R> Handler<A, BlockingMarker<R>> for Blocking<F>
where
    A: Send + Sync + 'static,
    F: Fn(&A, Request) -> R + Send + Sync + 'static,
    R: IntoResponse + 'static,
{
    type Output = R;

    fn into_handler_fn(self) -> HandlerFn<A> {
        self.into_handler_fn_with::<AsResponse>()
    }

    fn into_handler_fn_with<C: Conclude<R>>(self) -> HandlerFn<A> {
        let f = self.0;
        HandlerFn::Blocking(Box::new(move |app, request| C::conclude(f(app, request))))
    }
}

/// A blocking fn of no arguments.
impl<A, F, R> Handler<A, ()> for Blocking<F>
where
    A: Send + Sync + 'static,
    F: Fn() -> R + Send + Sync + 'static,
    R: IntoResponse,
{
    type Output = R;

    fn into_handler_fn(self) -> HandlerFn<A> {
        self.into_handler_fn_with::<AsResponse>()
    }

    fn into_handler_fn_with<C: Conclude<R>>(self) -> HandlerFn<A> {
        let f = self.0;
        HandlerFn::Blocking(Box::new(move |_app, _request| C::conclude(f())))
    }
}

/// A blocking fn of extractors, as [`async_handler`] for async ones.
macro_rules! blocking_handler {
    ([$($ty:ident),*], $last:ident) => {
        #[allow(non_snake_case)]
        impl<A, F, R, M, $($ty,)* $last> Handler<A, (M, $($ty,)* $last,)> for Blocking<F>
        where
            A: Send + Sync + 'static,
            F: Fn($($ty,)* $last) -> R + Send + Sync + 'static,
            R: IntoResponse,
            $($ty: FromRequestRef<A>,)*
            $last: FromRequest<A, M>,
        {
            type Output = R;

            fn into_handler_fn(self) -> HandlerFn<A> {
                self.into_handler_fn_with::<AsResponse>()
            }

            fn into_handler_fn_with<C: Conclude<R>>(self) -> HandlerFn<A> {
                let f = self.0;
                HandlerFn::Blocking(Box::new(move |app, request| {
                    $(
                        let $ty = match $ty::from_request_ref(&request, app) {
                            Ok(value) => value,
                            Err(rejection) => return rejection.into_response(),
                        };
                    )*
                    let $last = match $last::from_request(request, app) {
                        Ok(value) => value,
                        Err(rejection) => return rejection.into_response(),
                    };
                    C::conclude(f($($ty,)* $last))
                }))
            }
        }
    };
}

/// Calls `$name!([T1, …, Tn-1], Tn)` for 1 to 12 arguments (axum's
/// `all_the_tuples!`).
macro_rules! all_the_tuples {
    ($name:ident) => {
        $name!([], T1);
        $name!([T1], T2);
        $name!([T1, T2], T3);
        $name!([T1, T2, T3], T4);
        $name!([T1, T2, T3, T4], T5);
        $name!([T1, T2, T3, T4, T5], T6);
        $name!([T1, T2, T3, T4, T5, T6], T7);
        $name!([T1, T2, T3, T4, T5, T6, T7], T8);
        $name!([T1, T2, T3, T4, T5, T6, T7, T8], T9);
        $name!([T1, T2, T3, T4, T5, T6, T7, T8, T9], T10);
        $name!([T1, T2, T3, T4, T5, T6, T7, T8, T9, T10], T11);
        $name!([T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11], T12);
    };
}

all_the_tuples!(async_handler);
all_the_tuples!(blocking_handler);

/// A handler the container runs inside one transaction, made with
/// [`transactional`].
pub struct Transactional<H>(H);

/// Runs `handler` inside a container-managed transaction on the app's
/// default datasource: every query made through
/// [`Request::db`](crate::Request::db) joins it.
///
/// The handler returns a `Result`, and **`Ok` commits, `Err` rolls back**.
/// The container decides by the status it sends, so precisely:
///
/// | the handler… | the client gets | the transaction is |
/// |--------------|-----------------|--------------------|
/// | returns `Ok(v)`, `v` a success (status below 400) | `v` | committed |
/// | returns `Ok(v)`, `v` an error status (400 and up) | `v` | rolled back |
/// | returns `Err(e)` | `e` (an `e` whose status is below 400 is sent as a `500`, so that it rolls back) | rolled back |
/// | has a request refused by an extractor | the rejection | left untouched: the handler never ran |
/// | panics | `500` | rolled back |
///
/// It wraps async and [`blocking`] handlers alike:
/// `routes.post("/transfer", transactional(Self::transfer))`.
///
/// ```
/// use crabcat_sdk::prelude::*;
///
/// struct Bank;
///
/// impl Bank {
///     // Both updates or neither.
///     async fn pay(Path(id): Path<i64>, req: Request) -> Result<&'static str> {
///         let db = req.db();
///         db.query("UPDATE bills SET paid = TRUE WHERE id = $1").bind(id).execute().await?;
///         let done = db.query("UPDATE cash SET amount = amount - 10 WHERE amount >= 10").execute().await?;
///         if done.rows_affected == 0 {
///             return Err(Error::conflict("not enough cash")); // rolls back the first update
///         }
///         Ok("paid") // commits
///     }
/// }
/// # fn routes(routes: &mut Routes<Bank>) { routes.post("/bills/{id}/pay", transactional(Bank::pay)); }
/// ```
///
/// A handler that does not return a `Result` is refused at compile time:
///
/// ```compile_fail
/// # use crabcat_sdk::prelude::*;
/// # struct Bank;
/// async fn pay(req: Request) -> &'static str { "paid" }
/// # fn routes(routes: &mut Routes<Bank>) {
/// routes.post("/pay", transactional(pay));
/// # }
/// ```
pub fn transactional<H>(handler: H) -> Transactional<H> {
    Transactional(handler)
}

#[doc(hidden)]
pub struct TransactionalMarker<M>(PhantomData<M>);

impl<A, M, H, T, E> Handler<A, TransactionalMarker<M>> for Transactional<H>
where
    H: Handler<A, M, Output = Result<T, E>>,
    T: IntoResponse + 'static,
    E: IntoResponse + 'static,
    M: 'static,
{
    type Output = Result<T, E>;

    fn into_handler_fn(self) -> HandlerFn<A> {
        self.0.into_handler_fn_with::<AsTransaction>()
    }

    fn into_handler_fn_with<C: Conclude<Result<T, E>>>(self) -> HandlerFn<A> {
        self.0.into_handler_fn_with::<C>()
    }

    fn flags(&self) -> u32 {
        self.0.flags() | ROUTE_TRANSACTIONAL
    }

    fn max_body(&self) -> u64 {
        self.0.max_body()
    }
}

/// A handler with its own request body limit, made with [`body_limit`].
pub struct BodyLimit<H> {
    handler: H,
    bytes: u64,
}

/// Accepts request bodies of up to `bytes` on this route instead of the
/// container's `server.max_body_bytes`: larger or smaller. Meant for
/// uploads read with a [`BodyStream`](crate::BodyStream), which never holds
/// the whole body in memory: `routes.post("/upload", body_limit(10 << 30, Self::upload))`.
/// A larger body gets `413 Payload Too Large` (or, once streaming, an
/// error from [`BodyStream::chunk`](crate::BodyStream::chunk)).
pub fn body_limit<H>(bytes: u64, handler: H) -> BodyLimit<H> {
    BodyLimit {
        handler,
        bytes: bytes.max(1),
    }
}

#[doc(hidden)]
pub struct BodyLimitMarker<M>(PhantomData<M>);

impl<A, M: 'static, H: Handler<A, M>> Handler<A, BodyLimitMarker<M>> for BodyLimit<H> {
    type Output = H::Output;

    fn into_handler_fn(self) -> HandlerFn<A> {
        self.handler.into_handler_fn()
    }

    fn into_handler_fn_with<C: Conclude<H::Output>>(self) -> HandlerFn<A> {
        self.handler.into_handler_fn_with::<C>()
    }

    fn flags(&self) -> u32 {
        self.handler.flags()
    }

    fn max_body(&self) -> u64 {
        self.bytes
    }
}

/// The conclusion of a transactional handler: an `Err` always answers with
/// an error status, so the container rolls back.
#[doc(hidden)]
pub enum AsTransaction {}

impl<T: IntoResponse, E: IntoResponse> Conclude<Result<T, E>> for AsTransaction {
    fn conclude(output: Result<T, E>) -> Response {
        match output {
            Ok(value) => value.into_response(),
            Err(error) => rollback_response(error.into_response()),
        }
    }
}

/// `response` if its status rolls back, else a `500` that does.
fn rollback_response(response: Response) -> Response {
    if response.status().as_u16() >= 400 {
        return response;
    }
    Error::internal(format!(
        "a transactional handler returned Err with status {}; sent 500 so that the transaction rolls back",
        response.status().as_u16()
    ))
    .into_response()
}

#[cfg(test)]
mod tests;
