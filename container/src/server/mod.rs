//! The HTTP side: the listener and its TLS, the listener's service,
//! dispatch into modules through the lifecycle's routing tables, the
//! access log.

pub mod access_log;
pub mod deadline;
pub mod dispatch;
pub mod listener;
pub mod observe;
pub mod static_files;
pub mod stream;
pub mod tls;
pub mod websocket;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::response::Response;
use futures_util::FutureExt as _;

pub use access_log::{AccessLog, AccessLogError, AccessLogWriter};
use deadline::Activity;
pub use listener::{Limits, serve};
pub use tls::{Tls, TlsError};

use crate::config::{DeployConfig, ServerConfig};
use crate::lifecycle::ContextTable;
use crate::metrics::Metrics;

/// What the dispatcher needs.
pub struct ServerState {
    /// The context-path table, swapped by the lifecycle manager.
    pub table: Arc<ArcSwap<ContextTable>>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// A request to an app that takes longer gets `504`.
    pub request_timeout: Duration,
    /// Where request metrics go.
    pub metrics: Arc<Metrics>,
    /// Where access log lines go, when the log is on.
    pub access_log: Option<AccessLog>,
    /// Longest request target (path and query); longer gets `414`.
    pub max_uri_bytes: usize,
    /// The WebSocket protocol settings.
    pub websocket: websocket::Settings,
    /// How long a retired instance's streamed responses may go on.
    pub connection_grace: Duration,
    /// Requests on one HTTP/1 connection before it is closed; `0`: no limit.
    pub max_requests_per_connection: u32,
    /// Whether the listener serves TLS (`https`): what a session manager
    /// needs to give its cookies the `Secure` attribute.
    pub tls: bool,
    /// Proxies whose `X-Forwarded-Proto: https` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The `[static]` mounts: directories served with no module.
    pub mounts: static_files::Mounts,
}

/// Makes one [`Dispatcher`] per connection, which knows its client's
/// address (for the access log) at no cost per request.
#[derive(Clone)]
pub struct MakeDispatcher(Arc<ServerState>);

impl MakeDispatcher {
    /// The service for `table` and `mounts`, recording into `metrics` and
    /// `access_log`.
    pub fn new(
        table: Arc<ArcSwap<ContextTable>>,
        mounts: static_files::Mounts,
        metrics: Arc<Metrics>,
        access_log: Option<AccessLog>,
        config: &ServerConfig,
        deploy: &DeployConfig,
    ) -> Self {
        MakeDispatcher(Arc::new(ServerState {
            table,
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            metrics,
            access_log,
            max_uri_bytes: config.max_uri_bytes,
            websocket: websocket::Settings {
                max_message_bytes: config.websocket_max_message_bytes,
                ping_interval: Some(config.websocket_ping_interval).filter(|d| !d.is_zero()),
            },
            connection_grace: deploy.connection_grace,
            max_requests_per_connection: config.max_requests_per_connection,
            tls: config.tls.is_some(),
            trusted_proxies: config.trusted_proxies.clone(),
            mounts,
        }))
    }
}

impl MakeDispatcher {
    /// The service of one connection from `peer`, whose requests it marks
    /// busy in `activity`.
    pub fn dispatcher(&self, peer: std::net::IpAddr, activity: Arc<Activity>) -> Dispatcher {
        Dispatcher(Arc::new(Connection {
            state: Arc::clone(&self.0),
            peer,
            requests: AtomicU32::new(0),
            activity,
        }))
    }
}

/// The HTTP service of one connection: every request goes to
/// [`dispatch::dispatch`], which resolves the app and route itself,
/// enforces the limits and the request timeout, and records metrics and
/// the access log. A plain hyper service rather than an axum `Router` with
/// layers: routing is ours (context table, then the app's route table), and
/// each router layer costs work and a boxed future per request (measured
/// with `bench/callgrind.sh`).
#[derive(Clone)]
pub struct Dispatcher(Arc<Connection>);

/// What the requests of one connection share. Each request's future holds
/// the connection's `Arc`, not the server's: a connection's requests are
/// served one worker thread at a time, so counting its references costs an
/// atomic add on a cache line of that thread's, where the server's count
/// would be a line every worker writes, for every request.
pub struct Connection {
    /// The server's state.
    pub state: Arc<ServerState>,
    /// The client's address.
    pub peer: std::net::IpAddr,
    /// Requests this connection has made (HTTP/1; hyper calls one
    /// connection's service from its own task).
    requests: AtomicU32,
    /// What the connection's header read deadline looks at.
    activity: Arc<Activity>,
}

impl Connection {
    /// Whether this request is the last the connection may make.
    fn last_request(&self, version: http::Version) -> bool {
        let max = self.state.max_requests_per_connection;
        max != 0 && version <= http::Version::HTTP_11 && self.requests.fetch_add(1, Ordering::Relaxed) + 1 >= max
    }
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Dispatcher {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let last = self.0.last_request(request.version());
        let busy = self.0.activity.busy(request.version());
        let dispatched = dispatch::dispatch(Arc::clone(&self.0), request.map(Body::new));
        // `map` rather than an async block: the request's future is moved
        // into the box once, not again into a block's state.
        Box::pin(dispatched.map(move |mut response| {
            if last && response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
                // hyper closes the connection after a response that says so.
                let close = http::HeaderValue::from_static("close");
                response.headers_mut().insert(http::header::CONNECTION, close);
            }
            Ok(busy.hold_while_streamed(response))
        }))
    }
}
