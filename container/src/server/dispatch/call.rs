//! The call: read the body, run the handler (in a managed transaction when
//! the route asks for one), store the session, and build the response.

use std::pin::pin;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::HeaderValue;
use http::header::{CONTENT_LENGTH, SET_COOKIE};
use tokio::time::Instant;

use super::super::ServerState;
use super::super::stream::ModuleBody;
use super::super::websocket;
use super::Reject;
use super::admit::Call;
use super::reject::body_error;
use super::timeout::within;

use crate::abi::{BodyReader, HostRequest, HostResponse};
use crate::lifecycle::{Lease, Permit, Target};

impl Call {
    /// Reads the body and calls the handler by `deadline`: the request
    /// timeout after the request's start. (On a route that streams its
    /// body, the timeout applies to each wait for the client's next chunk
    /// instead.)
    pub(super) async fn run(self, state: &ServerState, deadline: Instant) -> Result<Response, Reject> {
        let Call {
            slot,
            lease,
            permit,
            blocking,
            target,
            head,
            mut request,
            body,
            max_body,
            websocket,
        } = self;
        let call = async {
            if let Some(handshake) = websocket {
                let (key, on_upgrade) = *handshake;
                let served = websocket::serve(&slot, lease, permit, target, request, key, on_upgrade, state.websocket);
                return Box::pin(served).await.map(|response| Served { response, keep: None });
            }
            match body {
                Some(body) if target.stream_body => {
                    HostRequest::unshared(&mut request).reader =
                        BodyReader::streaming(body, max_body, state.request_timeout);
                }
                // Boxed: most requests have no body, and this keeps their
                // future small.
                Some(body) => {
                    let body = Box::pin(axum::body::to_bytes(body, max_body))
                        .await
                        .map_err(body_error)?;
                    HostRequest::unshared(&mut request).body = body;
                }
                None => {}
            }
            serve(lease, permit, blocking, target, request).await
        };
        let served = match target.stream_body {
            true => call.await,
            false => match within(deadline, pin!(call)).await {
                Ok(served) => served,
                Err(_) => return Err(Reject::Timeout),
            },
        };
        served.map(|served| into_http(served, head, &slot.name, state))
    }
}

/// A handler's response, and for a streamed body, what the body keeps
/// until it ends: the instance (its lease) and the request's quota permit.
struct Served {
    response: HostResponse,
    keep: Option<(Lease, Permit)>,
}

/// Calls the handler, inside a container-managed transaction when the
/// route is transactional (committed when the response status is below
/// 400, rolled back otherwise), then closes the request's database scope:
/// whatever the handler left open is rolled back. (A streamed body is
/// produced after that: its queries run outside the managed transaction.)
async fn serve(
    lease: Lease,
    permit: Permit,
    blocking: Option<Permit>,
    target: Target,
    request: Arc<HostRequest>,
) -> Result<Served, Reject> {
    let held = Arc::clone(&request);
    let scope = &held.scope;
    // The database futures are large (several kB) and every request's
    // future is moved into a box by the server: they are boxed here, on
    // the routes that need them, so plain requests stay small.
    if target.transactional {
        let begun = Box::pin(scope.begin_managed()).await;
        if let Err((kind, message)) = begun {
            scope.close().await;
            return Err(Reject::Transaction(kind, message));
        }
    }
    let result = match target.blocking {
        true => lease.call_blocking(target, request, blocking).await,
        false => lease.call(target, request).await.map(|response| (response, lease)),
    }
    .map_err(Reject::Failed);
    if target.transactional {
        let commit = result.as_ref().is_ok_and(|(r, _)| r.status.as_u16() < 400);
        if let Err((kind, message)) = Box::pin(scope.end_managed(commit)).await {
            scope.close().await;
            return Err(Reject::Transaction(kind, message));
        }
    }
    scope.close().await;
    let (mut response, lease) = result?;
    if held.session.initialized()
        && let Some(cookie) = save_session(&held).await
    {
        response.headers.append(SET_COOKIE, cookie);
    }
    let keep = response.stream.is_some().then_some((lease, permit));
    Ok(Served { response, keep })
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

fn into_http(served: Served, head: bool, app: &Arc<str>, state: &ServerState) -> Response {
    let Served { response, keep } = served;
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
