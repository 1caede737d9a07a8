//! The request body as it arrives.

use std::sync::Arc;

use http::StatusCode;

use super::FromRequest;
use super::private::ViaTakeover;
use crate::abi::ROUTE_STREAM_BODY;
use crate::error::Error;
use crate::request::Request;

/// The request body, read as it arrives: a handler argument (the last one)
/// for bodies too large to hold in memory. A route whose handler takes it
/// is marked so that the container does not read the body first; the
/// container reads from the client only as fast as the handler asks, and
/// holds at most one chunk (at most the connection's read buffer) ahead.
///
/// The body limit still applies (`server.max_body_bytes`, or the route's
/// own with [`body_limit`](crate::body_limit)): a larger body ends with a
/// `413` error from [`chunk`](Self::chunk), which a handler returning
/// `Result` passes on with `?`.
///
/// ```
/// use crabcat_sdk::prelude::*;
///
/// // routes.post("/upload", body_limit(10 << 30, upload))
/// async fn upload(mut body: BodyStream) -> Result<String> {
///     let mut total = 0u64;
///     while let Some(chunk) = body.chunk().await? {
///         total += chunk.len() as u64;
///     }
///     Ok(format!("{total} bytes\n"))
/// }
/// ```
pub struct BodyStream {
    request: Request,
    done: bool,
}

impl BodyStream {
    /// The next chunk; `Ok(None)` at the end of the body.
    ///
    /// # Errors
    /// `413 Payload Too Large` past the route's body limit, `400 Bad
    /// Request` if the client aborted the body.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        if self.done {
            return Ok(None);
        }
        let chunk = self.request.handle().body_next().await;
        self.done = !matches!(chunk, Ok(Some(_)));
        chunk.map_err(|(status, message)| {
            Error::new(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), message)
        })
    }

    /// The whole rest of the body, up to `limit` bytes.
    ///
    /// # Errors
    /// As [`chunk`](Self::chunk), and `413` past `limit`.
    pub async fn to_vec(&mut self, limit: usize) -> Result<Vec<u8>, Error> {
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if all.len() + chunk.len() > limit {
                return Err(Error::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body larger than {limit} bytes"),
                ));
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// The request: headers, query, and the database.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream").field("done", &self.done).finish()
    }
}

impl<A> FromRequest<A, ViaTakeover> for BodyStream {
    type Rejection = std::convert::Infallible;
    const ROUTE_FLAGS: u32 = ROUTE_STREAM_BODY;

    fn from_request(request: Request, _app: &Arc<A>) -> Result<Self, Self::Rejection> {
        Ok(BodyStream { request, done: false })
    }
}
