//! The call: read the body, run the handler (in a managed transaction when
//! the route asks for one), store the session, and build the response.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::HeaderValue;
use http::header::{CONTENT_LENGTH, SET_COOKIE};

use super::super::ServerState;
use super::super::stream::ModuleBody;
use super::super::websocket;
use super::Reject;
use super::admit::Call;
use super::reject::body_error;

use crate::abi::{BodyReader, HostRequest, HostResponse};
use crate::lifecycle::{AppSlot, Lease, Permit};
use crate::striped::StripeRef;

impl Call {
    /// Whether the request timeout applies to the whole call. On a route
    /// that streams its body it applies to each wait for the client's
    /// next chunk instead.
    pub(super) fn timed(&self) -> bool {
        !self.target.stream_body
    }

    /// Reads the body and calls the handler, inside a container-managed
    /// transaction when the route is transactional (committed when the
    /// response status is below 400, rolled back otherwise), then closes
    /// the request's database scope: whatever the handler left open is
    /// rolled back. (A streamed body is produced after that: its queries
    /// run outside the managed transaction.)
    ///
    /// One function rather than a chain of them: each level of a call
    /// chain moves its callee's future into its own (this one is some 800
    /// bytes), for every request.
    ///
    /// An `async move` block rather than an `async fn`, and the fields of
    /// `self` used in place: an `async fn` moves its arguments into locals,
    /// and its future holds both.
    #[allow(clippy::manual_async_fn)] // deliberate, as said above
    pub(super) fn run<'a>(
        mut self,
        slot: &'a StripeRef<AppSlot>,
        state: &'a ServerState,
    ) -> impl Future<Output = Result<Response, Reject>> + Send + 'a {
        async move {
            let target = self.target;
            if let Some(handshake) = self.websocket.take() {
                let (key, on_upgrade) = *handshake;
                let served = websocket::serve(
                    slot,
                    self.lease,
                    self.permit,
                    target,
                    self.request,
                    key,
                    on_upgrade,
                    state.websocket,
                );
                let response = Box::pin(served).await?;
                return Ok(into_http(response, None, self.head, &slot.name, state));
            }
            match self.body.take() {
                Some(body) if target.stream_body => {
                    HostRequest::unshared(&mut self.request).reader =
                        BodyReader::streaming(body, self.max_body, state.request_timeout);
                }
                // Boxed: most requests have no body, and this keeps their
                // future small.
                Some(body) => {
                    let body = Box::pin(axum::body::to_bytes(body, self.max_body))
                        .await
                        .map_err(body_error)?;
                    HostRequest::unshared(&mut self.request).body = body;
                }
                None => {}
            }
            let scope = &self.request.scope;
            // The database futures are large (several kB): boxed, on the
            // routes that need them, so plain requests stay small.
            if target.transactional {
                let begun = Box::pin(scope.begin_managed()).await;
                if let Err((kind, message)) = begun {
                    scope.close().await;
                    return Err(Reject::Transaction(kind, message));
                }
            }
            // The handler's answer stays here, in this (boxed) future: an
            // async handler writes it in place.
            let mut response = self.lease.response();
            let result = match target.blocking {
                true => {
                    let blocking = self.blocking.take();
                    self.lease
                        .call_blocking(target, Arc::clone(&self.request), blocking)
                        .await
                        .map(|(answer, lease)| {
                            response = answer;
                            lease
                        })
                }
                false => self
                    .lease
                    .call(target, Arc::clone(&self.request), &mut response)
                    .await
                    .map(|()| self.lease),
            }
            .map_err(Reject::Failed);
            if target.transactional {
                let commit = result.is_ok() && response.status.as_u16() < 400;
                if let Err((kind, message)) = Box::pin(scope.end_managed(commit)).await {
                    scope.close().await;
                    return Err(Reject::Transaction(kind, message));
                }
            }
            scope.close().await;
            let lease = result?;
            if self.request.session.initialized()
                && let Some(cookie) = save_session(&self.request).await
            {
                response.headers.append(SET_COOKIE, cookie);
            }
            let keep = response.stream.is_some().then_some((lease, self.permit));
            Ok(into_http(response, keep, self.head, &slot.name, state))
        }
    }
}

/// Stores the session the handler changed; the cookie the response must
/// set, if any. A store that fails is logged, and the handler's response
/// goes out all the same (its other effects are done; refusing it would
/// only invite a retry): that request's session changes are lost.
async fn save_session(request: &HostRequest) -> Option<HeaderValue> {
    let session = request.session_to_save()?;
    let sessions = request.host_app.sessions()?;
    match Box::pin(sessions.save(&session, request.secure)).await {
        Ok(cookie) => cookie,
        Err(error) => {
            tracing::error!(app = request.host_app.name(), %error, "could not store a session; its changes are lost");
            None
        }
    }
}

/// The HTTP response for the handler's `response`; for a streamed body,
/// `keep` is what the body holds until it ends: the instance (its lease)
/// and the request's quota permit.
fn into_http(
    response: HostResponse,
    keep: Option<(Lease, Permit)>,
    head: bool,
    app: &Arc<str>,
    state: &ServerState,
) -> Response {
    let HostResponse {
        status,
        headers,
        body,
        stream,
        ..
    } = response;
    let length = body.len();
    let streamed = stream.is_some();
    let mut out = match (stream, keep) {
        (Some(stream), Some((lease, permit))) if !head => {
            let runtime = lease.own_runtime().cloned();
            let body = ModuleBody::new(stream, Arc::clone(app), lease, permit, state.connection_grace);
            match runtime {
                Some(runtime) => Response::new(Body::new(body.forwarded(&runtime))),
                None => Response::new(Body::new(body)),
            }
        }
        (stream, keep) => {
            // The module's stream goes first, while its instance is still held.
            drop(stream);
            drop(keep);
            match head {
                true => Response::new(Body::empty()),
                false => Response::new(Body::from(body)),
            }
        }
    };
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    if head && !streamed && !out.headers().contains_key(CONTENT_LENGTH) {
        out.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    out
}
