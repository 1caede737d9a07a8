//! Admission: find the app and the route (or the static file), and check
//! what can be checked before the body is read.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::Request;
use http::{HeaderValue, Method};
use hyper::upgrade::OnUpgrade;

use super::super::ServerState;
use super::super::static_files::Mount;
use super::super::websocket;
use super::Reject;

use crate::abi::{BodyReader, HostRequest};
use crate::lifecycle::{AppSlot, Lease, Lookup, Permit, Resolved, StaticRoot, Target};
use crate::striped::StripeRef;

/// Where an admitted request goes. The requests of static files are
/// boxed: the common case, a call, stays small in the request's future.
pub(super) enum Admitted {
    /// To a module's handler of this app. The slot apart from the call:
    /// the dispatcher keeps it, the call borrows it.
    Call(StripeRef<AppSlot>, Call),
    /// To a file of the app's static directory (`<context path>/static/...`).
    AppFile {
        slot: StripeRef<AppSlot>,
        root: Arc<StaticRoot>,
        strip: usize,
        request: Box<Request>,
    },
    /// To a file of a `[static]` mount.
    MountFile { mount: Arc<Mount>, request: Box<Request> },
}

/// The path prefix, inside an app, of its static files.
const APP_STATIC: &str = "/static/";

/// A request routed to a handler, ready to call.
pub(super) struct Call {
    /// Taken before the body is read, so a drain waits for this request.
    pub(super) lease: Lease,
    /// This request's place in the app's request quota.
    pub(super) permit: Permit,
    /// Its place in the app's blocking-call quota, for a blocking route.
    pub(super) blocking: Option<Permit>,
    pub(super) target: Target,
    pub(super) head: bool,
    /// Complete but for the body, when there is one to read. In its `Arc`
    /// from the start: the futures of the call hold a pointer, not the
    /// request, and nothing else holds it until the handler runs.
    pub(super) request: Arc<HostRequest>,
    pub(super) body: Option<Body>,
    /// The largest body the route accepts.
    pub(super) max_body: usize,
    /// On a WebSocket route: the handshake's key, and the connection's upgrade.
    /// Boxed: most requests are not handshakes.
    pub(super) websocket: Option<Box<(HeaderValue, OnUpgrade)>>,
}

type Rejected = (Option<StripeRef<AppSlot>>, Reject);

/// Finds the app and the route (or the static file), and checks what can
/// be checked before reading the body.
pub(super) fn admit(state: &ServerState, peer: IpAddr, request: Request) -> Result<Admitted, Rejected> {
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
        return Ok(Admitted::MountFile {
            mount: Arc::clone(mount),
            request: Box::new(request),
        });
    }
    let (slot, path_start) = match resolved {
        Resolved::App { slot, path_start } => (slot.local(), path_start),
        Resolved::AddSlash => return Err((None, Reject::AddSlash(with_slash(request.uri())))),
        Resolved::NotFound => return Err((None, Reject::NotFound)),
    };
    drop(table);
    slot.count_request();
    let Some(share) = slot.share() else {
        return Err((Some(slot), Reject::Unavailable));
    };
    let instance = share.instance();
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
            request: Box::new(request),
        });
    }
    if slot.watch.stalled() > 0 {
        return Err((Some(slot), Reject::Stalled));
    }
    let Some(permit) = Permit::request(&slot.limits) else {
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
    // The `Content-Length` hyper parsed and checked, as the body's size
    // hint: no header look-up (a chunked body's is 0, and is limited as
    // it is read).
    if usize::try_from(body.size_hint().lower()).map_or(true, |n| n > max_body) {
        return Err((Some(slot), Reject::BodyTooLarge));
    }
    let websocket = match target.websocket {
        true => {
            let key = websocket::check_handshake(&slot, &parts.headers).map_err(|r| (Some(slot.clone()), r))?;
            // HTTP/2 connections have no upgrade: those ask for one.
            let upgrade = parts.extensions.remove::<OnUpgrade>();
            let upgrade = upgrade.ok_or_else(|| (Some(slot.clone()), Reject::UpgradeRequired))?;
            Some(Box::new((key, upgrade)))
        }
        false => None,
    };
    let blocking = match target.blocking {
        true => Some(Permit::blocking(&slot.limits).ok_or_else(|| (Some(slot.clone()), Reject::Busy))?),
        false => None,
    };
    let head = parts.method == Method::HEAD;
    if websocket.is_some() {
        // The handshake lives as long as the connection: own its bytes, or
        // it pins the connection's whole read buffer (hyper's header values
        // are slices of it), 16 KiB per idle WebSocket.
        websocket::detach(&mut parts.uri, &mut parts.headers);
    }
    let secure = state.tls || forwarded_https(&state.trusted_proxies, peer, &parts.headers);
    let request = Arc::new(HostRequest {
        host_app: instance.host_app(),
        secure,
        session: Default::default(),
        method: parts.method,
        uri: parts.uri,
        path_start,
        headers: parts.headers,
        params,
        body: Bytes::new(),
        scope: share.new_scope(),
        reader: BodyReader::buffered(),
        upgrade: None,
    });
    let call = Call {
        lease: share.lease(),
        permit,
        blocking,
        target,
        head,
        request,
        body: (!body.is_end_stream()).then_some(body),
        max_body,
        websocket,
    };
    Ok(Admitted::Call(slot, call))
}

/// Whether a trusted proxy says the client's request came over TLS.
pub(super) fn forwarded_https(trusted_proxies: &[IpAddr], peer: IpAddr, headers: &http::HeaderMap) -> bool {
    !trusted_proxies.is_empty()
        && trusted_proxies.contains(&peer)
        && headers
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// Where the redirect that adds the missing `/` of a context path goes:
/// the same path with a `/`, and the same query.
pub(super) fn with_slash(uri: &http::Uri) -> String {
    match uri.query() {
        Some(query) => format!("{}/?{query}", uri.path()),
        None => format!("{}/", uri.path()),
    }
}
