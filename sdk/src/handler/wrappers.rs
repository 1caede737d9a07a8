//! Wrappers that change how a handler runs: inside a managed transaction
//! ([`transactional`]), or with its own body limit ([`body_limit`]).

use std::marker::PhantomData;

#[cfg(doc)] // for the doc links
use super::blocking;
use super::{Conclude, Handler, HandlerFn};
use crate::abi::ROUTE_TRANSACTIONAL;
use crate::error::Error;
use crate::response::{IntoResponse, Response};

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
