//! The HTTP side: the router and its layers, the context-path table, the
//! per-app route tables, and dispatch into modules.

pub mod context;
pub mod dispatch;
pub mod metrics;
pub mod observe;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
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

/// The HTTP router: one handler, [`dispatch::dispatch`], which enforces
/// the body limit and the request timeout and records metrics and the
/// access log itself. (Done in one place rather than as three tower layers:
/// each layer costs a boxed future per request, measured by `bench/run.sh`.)
pub fn router(table: Arc<ArcSwap<ContextTable>>, metrics: Arc<Metrics>, config: &ServerConfig) -> Router {
    let state = Arc::new(ServerState {
        table,
        max_body_bytes: config.max_body_bytes,
        request_timeout: config.request_timeout,
        metrics,
        access_log: config.access_log,
    });
    Router::new().fallback(dispatch::dispatch).with_state(state)
}

/// Serves until `shutdown` is cancelled, then stops accepting and waits up
/// to `grace` for open connections to finish. Returns `false` if the grace
/// period ran out.
///
/// # Errors
/// If accepting connections fails.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<bool> {
    let signal = shutdown.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move { signal.cancelled().await });
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
