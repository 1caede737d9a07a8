//! The HTTP side: the dispatch service, the context-path table, the
//! per-app route tables, and dispatch into modules.

pub mod context;
pub mod dispatch;
pub mod metrics;
pub mod observe;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use axum::ServiceExt as _;
use axum::extract::Request;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use context::{AppSlot, ContextTable};
pub use metrics::Metrics;

use crate::config::ServerConfig;

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
    /// Write an access log line per request.
    pub access_log: bool,
}

/// The HTTP service: every request goes to [`dispatch::dispatch`], which
/// resolves the app and route itself, enforces the body limit and the
/// request timeout, and records metrics and the access log. A plain tower
/// service rather than an axum `Router` with layers: routing is ours
/// (context table, then the app's route table), and each router layer
/// costs work and a boxed future per request (measured with
/// `bench/callgrind.sh`).
#[derive(Clone)]
pub struct Dispatcher(Arc<ServerState>);

impl Dispatcher {
    /// The service for `table`, recording into `metrics`.
    pub fn new(table: Arc<ArcSwap<ContextTable>>, metrics: Arc<Metrics>, config: &ServerConfig) -> Self {
        Dispatcher(Arc::new(ServerState {
            table,
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            metrics,
            access_log: config.access_log,
        }))
    }
}

impl tower_service::Service<Request> for Dispatcher {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let state = Arc::clone(&self.0);
        Box::pin(async move { Ok(dispatch::dispatch(&state, request).await) })
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
    service: Dispatcher,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<bool> {
    let signal = shutdown.clone();
    let server = axum::serve(listener, service.into_make_service())
        .with_graceful_shutdown(async move { signal.cancelled().await });
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
