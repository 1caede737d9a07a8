//! Extractors: handler arguments built from the request, as in axum.
//!
//! A handler is an async fn (or, wrapped in [`blocking`](crate::blocking), a
//! plain fn) whose arguments are extractors:
//!
//! ```
//! use crabcat_sdk::prelude::*;
//!
//! struct Shop {
//!     currency: String,
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct NewItem {
//!     name: String,
//!     price: i64,
//! }
//!
//! impl Shop {
//!     // POST /items/{shelf}
//!     async fn add(shop: State<Self>, Path(shelf): Path<u32>, Json(item): Json<NewItem>, req: Request) -> Result<String> {
//!         req.db()
//!             .query("INSERT INTO items (shelf, name, price) VALUES ($1, $2, $3)")
//!             .bind(shelf)
//!             .bind(&item.name)
//!             .bind(item.price)
//!             .execute()
//!             .await?;
//!         Ok(format!("{} for {} {}", item.name, item.price, shop.currency))
//!     }
//! }
//! ```
//!
//! | extractor | gives | refuses with |
//! |-----------|-------|--------------|
//! | [`State<A>`] | the app (derefs to it) | never |
//! | `Arc<A>` | the app, for a method taking `self: Arc<Self>` | never |
//! | [`Path<T>`] | path parameters, parsed | 400 (500 if `T` does not fit the route) |
//! | [`Query<T>`] | the query string, parsed | 400 |
//! | [`Json<T>`](crate::Json) | a JSON body | 415, 400, 422 |
//! | [`Form<T>`] | a form body | 415, 422 |
//! | [`JsonOrForm<T>`] | either, by content type | 415, 400, 422 |
//! | `String`, `Vec<u8>` | the body | 400 if not UTF-8 / never |
//! | `Result<T, T::Rejection>` | `T`, or why not | never |
//! | [`Request`] (last argument only) | the request itself: headers, [`db`](Request::db), … | never |
//! | [`BodyStream`] (last argument only) | the body as it arrives (the container does not read it first) | never (errors come from its `chunk`) |
//! | [`WebSocket`](crate::WebSocket) (last argument only) | the accepted connection, on a [`websocket`](crate::Routes::websocket) route | 400 if not a handshake |
//!
//! A refused request gets the [`Rejection`]'s status and an
//! `application/problem+json` body, and the handler does not run.
//! Extractors run in argument order, each reading the request in place
//! (the container has already read the whole body), so a body extractor
//! may come anywhere. Only [`Request`] takes the request itself, so it
//! comes last. Extraction is synchronous: everything an extractor reads
//! is already in the container's memory.
//!
//! Your own extractor implements [`FromRequestRef`].

mod body;
mod path;
mod query;
mod rejection;
mod stream;
pub(crate) mod text;

use std::convert::Infallible;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

pub(crate) use body::decode_form;
pub use body::{Form, JsonOrForm};
pub use path::Path;
pub use query::Query;
pub use rejection::Rejection;
pub use stream::BodyStream;

use crate::request::Request;
use crate::response::IntoResponse;

/// Something a handler argument can be built from, reading the request in
/// place (every extractor but [`Request`] itself).
///
/// `A` is the app type, so an extractor can reach the app's state (see
/// [`State`]).
///
/// ```
/// use std::sync::Arc;
/// use crabcat_sdk::prelude::*;
/// use crabcat_sdk::FromRequestRef;
///
/// /// The caller's `x-api-key`, required.
/// struct ApiKey(String);
///
/// impl<A> FromRequestRef<A> for ApiKey {
///     type Rejection = Error;
///
///     fn from_request_ref(req: &Request, _app: &Arc<A>) -> Result<Self, Error> {
///         match req.header("x-api-key") {
///             Some(key) => Ok(ApiKey(key.to_owned())),
///             None => Err(Error::new(StatusCode::UNAUTHORIZED, "an x-api-key header is required")),
///         }
///     }
/// }
///
/// async fn secret(ApiKey(key): ApiKey) -> String {
///     format!("hello, holder of {key}")
/// }
/// ```
pub trait FromRequestRef<A>: Sized {
    /// What a refused request is answered with.
    type Rejection: IntoResponse;

    /// Builds the value, or refuses the request.
    ///
    /// # Errors
    /// The rejection the client gets instead of the handler's response.
    fn from_request_ref(req: &Request, app: &Arc<A>) -> Result<Self, Self::Rejection>;
}

/// What the last argument of a handler is built from: the request itself
/// ([`Request`]), or any [`FromRequestRef`] extractor. `M` only tells the two
/// apart; implement [`FromRequestRef`] instead of this.
pub trait FromRequest<A, M = private::ViaRef>: Sized {
    /// What a refused request is answered with.
    type Rejection: IntoResponse;

    /// `ROUTE_*` flags a handler taking this needs (a streamed body, a
    /// WebSocket); set on its route automatically.
    #[doc(hidden)]
    const ROUTE_FLAGS: u32 = 0;

    /// Builds the value from the request, which it may keep.
    ///
    /// # Errors
    /// The rejection the client gets instead of the handler's response.
    fn from_request(req: Request, app: &Arc<A>) -> Result<Self, Self::Rejection>;
}

pub(crate) mod private {
    /// [`FromRequest`](super::FromRequest) through [`FromRequestRef`](super::FromRequestRef).
    #[derive(Debug, Clone, Copy)]
    pub enum ViaRef {}

    /// [`FromRequest`](super::FromRequest) for the request itself.
    #[derive(Debug, Clone, Copy)]
    pub enum ViaRequest {}

    /// [`FromRequest`](super::FromRequest) for what takes the request over
    /// (a body stream, a WebSocket).
    #[derive(Debug, Clone, Copy)]
    pub enum ViaTakeover {}
}

impl<A, T: FromRequestRef<A>> FromRequest<A, private::ViaRef> for T {
    type Rejection = T::Rejection;

    fn from_request(req: Request, app: &Arc<A>) -> Result<Self, Self::Rejection> {
        T::from_request_ref(&req, app)
    }
}

/// The request itself, as the last argument: for headers, the raw body
/// and the database ([`Request::db`]).
impl<A> FromRequest<A, private::ViaRequest> for Request {
    type Rejection = Infallible;

    fn from_request(req: Request, _app: &Arc<A>) -> Result<Self, Infallible> {
        Ok(req)
    }
}

/// An extractor's value or its rejection, for a handler that answers
/// refused requests its own way.
impl<A, T: FromRequestRef<A>> FromRequestRef<A> for Result<T, T::Rejection> {
    type Rejection = Infallible;

    fn from_request_ref(req: &Request, app: &Arc<A>) -> Result<Self, Infallible> {
        Ok(T::from_request_ref(req, app))
    }
}

/// The app, as a handler argument: `app: State<Self>` derefs to the app
/// (one shared instance, created by [`App::init`](crate::App::init)).
///
/// Cloning it clones the `Arc` (the app is not copied); the field is the
/// `Arc`, for a handler that wants to keep it, e.g. in a spawned task.
///
/// ```
/// use crabcat_sdk::prelude::*;
///
/// struct Hello {
///     greeting: String,
/// }
///
/// impl Hello {
///     async fn index(app: State<Self>) -> String {
///         format!("{}!", app.greeting)
///     }
/// }
/// ```
pub struct State<A>(pub Arc<A>);

impl<A> Deref for State<A> {
    type Target = A;

    fn deref(&self) -> &A {
        &self.0
    }
}

impl<A> Clone for State<A> {
    fn clone(&self) -> Self {
        State(Arc::clone(&self.0))
    }
}

impl<A: fmt::Debug> fmt::Debug for State<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&self.0).finish()
    }
}

impl<A> FromRequestRef<A> for State<A> {
    type Rejection = Infallible;

    fn from_request_ref(_req: &Request, app: &Arc<A>) -> Result<Self, Infallible> {
        Ok(State(Arc::clone(app)))
    }
}

/// The app as an `Arc`, what older handlers take as `self: Arc<Self>`: a
/// method may take `self: Arc<Self>` and then any extractors.
impl<A> FromRequestRef<A> for Arc<A> {
    type Rejection = Infallible;

    fn from_request_ref(_req: &Request, app: &Arc<A>) -> Result<Self, Infallible> {
        Ok(Arc::clone(app))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::testing::TestRequest;

    #[test]
    fn state_is_the_shared_app() {
        let app = Arc::new(String::from("app"));
        let req = TestRequest::get("/").build();
        let state = State::from_request_ref(&req, &app).unwrap();
        assert_eq!(state.len(), 3, "derefs to the app");
        assert!(Arc::ptr_eq(&state.0, &app));
    }

    #[test]
    fn a_result_extractor_hands_over_the_rejection() {
        let req = TestRequest::get("/").query("n=x").build();
        let app = Arc::new(());
        #[derive(Debug, serde::Deserialize)]
        struct N {
            #[allow(dead_code)]
            n: u8,
        }
        let Ok(result) = <Result<Query<N>, Rejection>>::from_request_ref(&req, &app);
        assert!(matches!(result, Err(Rejection::InvalidQuery(_))));
        let Ok(req) = <Request as FromRequest<(), _>>::from_request(req, &app);
        assert_eq!(req.query_string(), "n=x");
    }
}
