//! The one handler behind every request: find the app, the route, call the
//! module, and turn the outcome into a response.

use std::sync::Arc;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderValue, Method, StatusCode};

use std::time::Instant;

use super::ServerState;
use super::observe;
use crabcat_sdk::abi::wire::ErrorKind;

use crate::abi::{CallError, HostRequest, HostResponse};
use crate::lifecycle::{AppSlot, Lease, Lookup, Permit, Resolved, ServeError, Target};

/// Every way a request can fail before or around the module. Turned into a
/// response in exactly one place: the `IntoResponse` impl below.
#[derive(Debug)]
pub enum Reject {
    NotFound,
    UriTooLong,
    /// The app has its most requests (or blocking calls) running.
    Busy,
    AddSlash(String),
    Unavailable,
    MethodNotAllowed(String),
    BadParam,
    BodyTooLarge,
    BadBody,
    Timeout,
    /// The managed transaction of a transactional route could not begin or commit.
    Transaction(ErrorKind, String),
    Failed(ServeError),
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let mut extra = None;
        let (status, message) = match self {
            Reject::NotFound => (StatusCode::NOT_FOUND, "not found"),
            Reject::UriTooLong => (StatusCode::URI_TOO_LONG, "request target too long"),
            Reject::Busy => (StatusCode::SERVICE_UNAVAILABLE, "application busy"),
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
            Reject::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            Reject::BadBody => (StatusCode::BAD_REQUEST, "could not read request body"),
            Reject::Timeout => (StatusCode::GATEWAY_TIMEOUT, "request timed out"),
            Reject::Failed(ServeError::Cancelled) => (StatusCode::SERVICE_UNAVAILABLE, "application stopping"),
            Reject::Transaction(..) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
            Reject::Failed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
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
    let (slot, result) = match admit(state, request) {
        Ok(call) => {
            let slot = Arc::clone(&call.slot);
            (Some(slot), call.run(state).await)
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
    observe::record(state, peer, slot.as_deref(), access, &response, start.elapsed());
    response
}

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
}

type Rejected = (Option<Arc<AppSlot>>, Reject);

/// Finds the app and the route, and checks what can be checked before
/// reading the body.
fn admit(state: &ServerState, request: Request) -> Result<Call, Rejected> {
    if request
        .uri()
        .path_and_query()
        .is_some_and(|p| p.as_str().len() > state.max_uri_bytes)
    {
        return Err((None, Reject::UriTooLong));
    }
    let table = state.table.load();
    let (slot, path_start) = match table.resolve(request.uri().path()) {
        Resolved::App { slot, path_start } => (Arc::clone(slot), path_start),
        Resolved::AddSlash => return Err((None, Reject::AddSlash(with_slash(request.uri())))),
        Resolved::NotFound => return Err((None, Reject::NotFound)),
    };
    drop(table);
    slot.count_request();
    let Some(instance) = slot.instance() else {
        return Err((Some(slot), Reject::Unavailable));
    };
    let Some(permit) = slot.limits.try_request() else {
        return Err((Some(slot), Reject::Busy));
    };
    if declared_length(&request).is_some_and(|n| n > state.max_body_bytes) {
        return Err((Some(slot), Reject::BodyTooLarge));
    }
    let (parts, body) = request.into_parts();
    let (target, params) = match instance.routes().lookup(&parts.method, &parts.uri.path()[path_start..]) {
        Lookup::Found { target, params } => (target, params),
        Lookup::MethodNotAllowed(allow) => return Err((Some(slot), Reject::MethodNotAllowed(allow))),
        Lookup::NotFound => return Err((Some(slot), Reject::NotFound)),
        Lookup::BadParam => return Err((Some(slot), Reject::BadParam)),
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
    let request = HostRequest {
        method: parts.method,
        uri: parts.uri,
        path_start,
        context_path: Arc::clone(&slot.prefix),
        headers: parts.headers,
        params,
        body: Bytes::new(),
        scope: instance.new_scope(),
    };
    Ok(Call {
        slot,
        lease: instance.lease(),
        permit,
        blocking,
        target,
        head,
        request,
        body: (!body.is_end_stream()).then_some(body),
    })
}

impl Call {
    /// Reads the body and calls the handler, within the request timeout.
    async fn run(self, state: &ServerState) -> Result<Response, Reject> {
        let Call {
            lease,
            permit,
            blocking,
            target,
            head,
            mut request,
            body,
            ..
        } = self;
        let call = async move {
            // Held until the handler is done (or, for a blocking one, its thread).
            let _permit = permit;
            if let Some(body) = body {
                // Boxed: most requests have no body, and this keeps their
                // future small.
                request.body = Box::pin(axum::body::to_bytes(body, state.max_body_bytes))
                    .await
                    .map_err(body_error)?;
            }
            serve(lease, blocking, target, Arc::new(request)).await
        };
        match tokio::time::timeout(state.request_timeout, call).await {
            Ok(result) => result.map(|response| into_http(response, head)),
            Err(_) => Err(Reject::Timeout),
        }
    }
}

/// Calls the handler, inside a container-managed transaction when the
/// route is transactional (committed when the response status is below
/// 400, rolled back otherwise), then closes the request's database scope:
/// whatever the handler left open is rolled back.
async fn serve(
    lease: Lease,
    blocking: Option<Permit>,
    target: Target,
    request: Arc<HostRequest>,
) -> Result<HostResponse, Reject> {
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
        false => lease.call(target, request).await,
    }
    .map_err(Reject::Failed);
    if target.transactional {
        let commit = result.as_ref().is_ok_and(|r| r.status.as_u16() < 400);
        if let Err((kind, message)) = Box::pin(scope.end_managed(commit)).await {
            scope.close().await;
            return Err(Reject::Transaction(kind, message));
        }
    }
    scope.close().await;
    result
}

fn declared_length(request: &Request) -> Option<usize> {
    request.headers().get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn into_http(response: HostResponse, head: bool) -> Response {
    let HostResponse {
        status, headers, body, ..
    } = response;
    let length = body.len();
    let mut out = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(body))
    };
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    if head && !out.headers().contains_key(CONTENT_LENGTH) {
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
