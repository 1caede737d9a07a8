//! The one handler behind every request: find the app, the route, call the
//! module, and turn the outcome into a response.

use std::sync::Arc;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Method, StatusCode};

use std::time::Instant;

use super::ServerState;
use super::observe;
use super::static_files::{self, Mount};
use super::stream::ModuleBody;
use super::websocket;
use crabcat_sdk::abi::wire::ErrorKind;
use hyper::upgrade::OnUpgrade;

use crate::abi::{BodyReader, CallError, HostRequest, HostResponse};
use crate::lifecycle::{AppSlot, Lease, Lookup, Permit, Resolved, ServeError, StaticRoot, Target};

/// Every way a request can fail before or around the module. Turned into a
/// response in exactly one place: the `IntoResponse` impl below.
#[derive(Debug)]
pub enum Reject {
    NotFound,
    UriTooLong,
    /// The app has its most requests (or blocking calls) running.
    Busy,
    /// A handler of the app holds a worker thread without yielding.
    Stalled,
    AddSlash(String),
    Unavailable,
    MethodNotAllowed(String),
    BadParam,
    BodyTooLarge,
    BadBody,
    Timeout,
    /// A request to a WebSocket route that is not a handshake.
    UpgradeRequired,
    /// A WebSocket handshake from an origin the app does not allow.
    OriginForbidden,
    /// The managed transaction of a transactional route could not begin or commit.
    Transaction(ErrorKind, String),
    Failed(ServeError),
    /// A static file path that tries to leave its directory (`..`, `%2f`,
    /// `\`, NUL) or is not UTF-8.
    BadPath,
    /// A static file could not be read (logged where it happened).
    FileError,
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let mut extra = None;
        let (status, message) = match self {
            Reject::UpgradeRequired => return websocket::upgrade_required(),
            Reject::OriginForbidden => (StatusCode::FORBIDDEN, "origin not allowed to open a WebSocket here"),
            Reject::NotFound => (StatusCode::NOT_FOUND, "not found"),
            Reject::UriTooLong => (StatusCode::URI_TOO_LONG, "request target too long"),
            Reject::Busy => (StatusCode::SERVICE_UNAVAILABLE, "application busy"),
            Reject::Stalled => (StatusCode::SERVICE_UNAVAILABLE, "application stalled"),
            Reject::AddSlash(location) => {
                extra = Some((LOCATION, location));
                (StatusCode::PERMANENT_REDIRECT, "moved")
            }
            Reject::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "application not available"),
            Reject::MethodNotAllowed(allow) => {
                extra = Some((ALLOW, allow));
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            Reject::BadParam => (StatusCode::BAD_REQUEST, "bad path parameter"),
            Reject::BadPath => (StatusCode::BAD_REQUEST, "bad path"),
            Reject::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            Reject::BadBody => (StatusCode::BAD_REQUEST, "could not read request body"),
            Reject::Timeout => (StatusCode::GATEWAY_TIMEOUT, "request timed out"),
            Reject::Failed(ServeError::Cancelled) => (StatusCode::SERVICE_UNAVAILABLE, "application stopping"),
            Reject::Transaction(..) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
            Reject::Failed(_) | Reject::FileError => (StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 of the container's is temporary: say when to retry.
            extra = Some((RETRY_AFTER, "1".to_owned()));
        }
        let content_type = [(CONTENT_TYPE, "text/plain; charset=utf-8")];
        let mut response = (status, content_type, format!("{message}\n")).into_response();
        if let Some((name, value)) = extra
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// The handler behind every request: resolve the app, enforce the body
/// limit and the timeout, call the module, record metrics and the access log.
pub async fn dispatch(state: &ServerState, peer: std::net::IpAddr, request: Request) -> Response {
    let start = Instant::now();
    let access = state.access_log.as_ref().map(|log| log.capture(&request));
    // Everything up to the call is synchronous; the future only holds what
    // the call needs (every request's future is moved into a box).
    let mut mount = None;
    let (slot, result) = match admit(state, peer, request) {
        Ok(Admitted::Call(call)) => {
            let slot = Arc::clone(&call.slot);
            (Some(slot), call.run(state).await)
        }
        Ok(Admitted::AppFile {
            slot,
            root,
            strip,
            request,
        }) => {
            // Boxed: keeps the future of module requests as small as it was.
            (Some(slot), Box::pin(static_files::serve(&root, strip, request)).await)
        }
        Ok(Admitted::MountFile { mount: m, request }) => {
            mount = Some(m);
            (
                None,
                Box::pin(static_files::serve(&m.root, m.prefix_len(), request)).await,
            )
        }
        Err((slot, reject)) => (slot, Err(reject)),
    };
    let response = result.unwrap_or_else(|reject| {
        match (&reject, &slot) {
            (Reject::Failed(error), Some(slot)) => log_failure(&slot.name, error),
            (Reject::Transaction(_, message), Some(slot)) => {
                tracing::error!(app = &*slot.name, "managed transaction failed: {message}");
            }
            _ => {}
        }
        reject.into_response()
    });
    let owner = match (&slot, mount) {
        (Some(slot), _) => Some((&slot.name, slot.metrics(&state.metrics))),
        (None, Some(mount)) => Some((&mount.label, mount.metrics(&state.metrics))),
        (None, None) => None,
    };
    observe::record(state, peer, owner, access, &response, start.elapsed());
    response
}

/// Where an admitted request goes.
// `Call` is the large one, and the common one: boxing it would cost every
// module request an allocation.
#[allow(clippy::large_enum_variant)]
enum Admitted<'s> {
    /// To a module's handler.
    Call(Call),
    /// To a file of the app's static directory (`<context path>/static/...`).
    AppFile {
        slot: Arc<AppSlot>,
        root: Arc<StaticRoot>,
        strip: usize,
        request: Request,
    },
    /// To a file of a `[static]` mount.
    MountFile { mount: &'s Mount, request: Request },
}

/// The path prefix, inside an app, of its static files.
const APP_STATIC: &str = "/static/";

/// A request routed to a handler, ready to call.
struct Call {
    slot: Arc<AppSlot>,
    /// Taken before the body is read, so a drain waits for this request.
    lease: Lease,
    /// This request's place in the app's request quota.
    permit: Permit,
    /// Its place in the app's blocking-call quota, for a blocking route.
    blocking: Option<Permit>,
    target: Target,
    head: bool,
    /// Complete but for the body, when there is one to read.
    request: HostRequest,
    body: Option<Body>,
    /// The largest body the route accepts.
    max_body: usize,
    /// On a WebSocket route: the handshake's key, and the connection's upgrade.
    /// Boxed: most requests are not handshakes.
    websocket: Option<Box<(HeaderValue, OnUpgrade)>>,
}

type Rejected = (Option<Arc<AppSlot>>, Reject);

/// Finds the app and the route (or the static file), and checks what can
/// be checked before reading the body.
fn admit(state: &ServerState, peer: std::net::IpAddr, request: Request) -> Result<Admitted<'_>, Rejected> {
    if request
        .uri()
        .path_and_query()
        .is_some_and(|p| p.as_str().len() > state.max_uri_bytes)
    {
        return Err((None, Reject::UriTooLong));
    }
    let table = state.table.load();
    let path = request.uri().path();
    let resolved = table.resolve(path);
    if let Some(mount) = state.mounts.find(path, resolved.matched_len(path)) {
        if mount.is_bare(path) {
            return Err((None, Reject::AddSlash(with_slash(request.uri()))));
        }
        return Ok(Admitted::MountFile { mount, request });
    }
    let (slot, path_start) = match resolved {
        Resolved::App { slot, path_start } => (Arc::clone(slot), path_start),
        Resolved::AddSlash => return Err((None, Reject::AddSlash(with_slash(request.uri())))),
        Resolved::NotFound => return Err((None, Reject::NotFound)),
    };
    drop(table);
    slot.count_request();
    let Some(instance) = slot.instance() else {
        return Err((Some(slot), Reject::Unavailable));
    };
    // Only requests under `/static/` look further (a string comparison).
    // A configured `static_dir` wins over the bundle's `static/`, which
    // belongs to the instance: a reload swaps code and files at once.
    if request.uri().path()[path_start..].starts_with(APP_STATIC)
        && let Some(root) = slot.static_root().or_else(|| instance.static_root())
    {
        let strip = path_start + APP_STATIC.len() - 1;
        return Ok(Admitted::AppFile {
            slot,
            root,
            strip,
            request,
        });
    }
    if slot.watch.stalled() > 0 {
        return Err((Some(slot), Reject::Stalled));
    }
    let Some(permit) = slot.limits.try_request() else {
        return Err((Some(slot), Reject::Busy));
    };
    let (mut parts, body) = request.into_parts();
    let (target, params) = match instance.routes().lookup(&parts.method, &parts.uri.path()[path_start..]) {
        Lookup::Found { target, params } => (target, params),
        Lookup::MethodNotAllowed(allow) => return Err((Some(slot), Reject::MethodNotAllowed(allow))),
        Lookup::NotFound => return Err((Some(slot), Reject::NotFound)),
        Lookup::BadParam => return Err((Some(slot), Reject::BadParam)),
    };
    let max_body = target
        .max_body
        .map_or(state.max_body_bytes, |n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared_length(&parts.headers).is_some_and(|n| n > max_body) {
        return Err((Some(slot), Reject::BodyTooLarge));
    }
    let websocket = match target.websocket {
        true => {
            let key = websocket::check_handshake(&slot, &parts.headers).map_err(|r| (Some(Arc::clone(&slot)), r))?;
            // HTTP/2 connections have no upgrade: those ask for one.
            let upgrade = parts.extensions.remove::<OnUpgrade>();
            let upgrade = upgrade.ok_or_else(|| (Some(Arc::clone(&slot)), Reject::UpgradeRequired))?;
            Some(Box::new((key, upgrade)))
        }
        false => None,
    };
    let blocking = match target.blocking {
        true => Some(
            slot.limits
                .try_blocking()
                .ok_or_else(|| (Some(Arc::clone(&slot)), Reject::Busy))?,
        ),
        false => None,
    };
    let head = parts.method == Method::HEAD;
    if websocket.is_some() {
        // The handshake lives as long as the connection: own its bytes, or
        // it pins the connection's whole read buffer (hyper's header values
        // are slices of it), 16 KiB per idle WebSocket.
        websocket::detach(&mut parts.uri, &mut parts.headers);
    }
    let secure = state.tls || forwarded_https(state, peer, &parts.headers);
    let request = HostRequest {
        host_app: instance.host_app(),
        secure,
        session: Default::default(),
        method: parts.method,
        uri: parts.uri,
        path_start,
        context_path: Arc::clone(&slot.prefix),
        headers: parts.headers,
        params,
        body: Bytes::new(),
        scope: instance.new_scope(),
        reader: BodyReader::buffered(),
        upgrade: None,
    };
    Ok(Admitted::Call(Call {
        slot,
        lease: instance.lease(),
        permit,
        blocking,
        target,
        head,
        request,
        body: (!body.is_end_stream()).then_some(body),
        max_body,
        websocket,
    }))
}

impl Call {
    /// Reads the body and calls the handler, within the request timeout
    /// (on a route that streams its body, the timeout applies to each wait
    /// for the client's next chunk instead).
    async fn run(self, state: &ServerState) -> Result<Response, Reject> {
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
                    request.reader = BodyReader::streaming(body, max_body, state.request_timeout);
                }
                // Boxed: most requests have no body, and this keeps their
                // future small.
                Some(body) => {
                    request.body = Box::pin(axum::body::to_bytes(body, max_body))
                        .await
                        .map_err(body_error)?;
                }
                None => {}
            }
            serve(lease, permit, blocking, target, Arc::new(request)).await
        };
        let served = match target.stream_body {
            true => call.await,
            false => match tokio::time::timeout(state.request_timeout, call).await {
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

/// Whether a trusted proxy says the client's request came over TLS.
fn forwarded_https(state: &ServerState, peer: std::net::IpAddr, headers: &http::HeaderMap) -> bool {
    !state.trusted_proxies.is_empty()
        && state.trusted_proxies.contains(&peer)
        && headers
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
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

fn declared_length(headers: &http::HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
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

fn body_error(error: axum::Error) -> Reject {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return Reject::BodyTooLarge;
        }
        source = e.source();
    }
    Reject::BadBody
}

fn with_slash(uri: &http::Uri) -> String {
    match uri.query() {
        Some(query) => format!("{}/?{query}", uri.path()),
        None => format!("{}/", uri.path()),
    }
}

fn log_failure(app: &str, error: &ServeError) {
    match error {
        ServeError::Call(CallError::Panicked) => {
            tracing::error!(
                app,
                "handler panicked (the module logged the panic above); answered 500"
            )
        }
        ServeError::Cancelled => tracing::warn!(app, "request cancelled because the app is stopping"),
        other => tracing::error!(app, error = %other, "request failed"),
    }
}
