//! The HTTP side: the listener's service, dispatch into modules through
//! the lifecycle's routing tables, the access log.

pub mod access_log;
pub mod dispatch;
pub mod observe;

use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use axum::extract::Request;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use access_log::{AccessLog, AccessLogError, AccessLogWriter};

use crate::config::ServerConfig;
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
}

/// Makes one [`Dispatcher`] per connection, which knows its client's
/// address (for the access log) at no cost per request.
#[derive(Clone)]
pub struct MakeDispatcher(Arc<ServerState>);

impl MakeDispatcher {
    /// The service for `table`, recording into `metrics` and `access_log`.
    pub fn new(
        table: Arc<ArcSwap<ContextTable>>,
        metrics: Arc<Metrics>,
        access_log: Option<AccessLog>,
        config: &ServerConfig,
    ) -> Self {
        MakeDispatcher(Arc::new(ServerState {
            table,
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            metrics,
            access_log,
        }))
    }
}

impl tower_service::Service<axum::serve::IncomingStream<'_, TcpListener>> for MakeDispatcher {
    type Response = Dispatcher;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Dispatcher, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self::Future {
        std::future::ready(Ok(Dispatcher {
            state: Arc::clone(&self.0),
            peer: stream.remote_addr().ip(),
        }))
    }
}

/// The HTTP service of one connection: every request goes to
/// [`dispatch::dispatch`], which resolves the app and route itself,
/// enforces the body limit and the request timeout, and records metrics
/// and the access log. A plain tower service rather than an axum `Router`
/// with layers: routing is ours (context table, then the app's route
/// table), and each router layer costs work and a boxed future per request
/// (measured with `bench/callgrind.sh`).
#[derive(Clone)]
pub struct Dispatcher {
    state: Arc<ServerState>,
    peer: std::net::IpAddr,
}

impl tower_service::Service<Request> for Dispatcher {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let state = Arc::clone(&self.state);
        let peer = self.peer;
        Box::pin(async move { Ok(dispatch::dispatch(&state, peer, request).await) })
    }
}

/// Serves until `shutdown` is cancelled, then stops accepting and waits up
/// to `grace` for open connections to finish. Returns `false` if the grace
/// period ran out.
///
/// # Errors
/// If accepting connections fails.
pub async fn serve(
    listener: TcpListener,
    service: MakeDispatcher,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<bool> {
    let signal = shutdown.clone();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move { signal.cancelled().await });
    let grace_over = async {
        shutdown.cancelled().await;
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down: no new connections, finishing requests"
        );
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.map(|()| true),
        () = grace_over => {
            tracing::warn!("shutdown grace period over; cancelling requests still running");
            Ok(false)
        }
    }
}
