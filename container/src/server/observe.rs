//! Per-request observation: metrics for every request, and the access log
//! line (app, method, path, status, latency) when it is on.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::dispatch::AppName;
use super::metrics::Metrics;

/// What the middleware needs.
pub struct Observer {
    /// Where request metrics go.
    pub metrics: Arc<Metrics>,
    /// Write an access log line per request.
    pub access_log: bool,
}

/// Middleware: records metrics, writes the access log (target `crabcat::access`).
pub async fn observe(State(observer): State<Arc<Observer>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let access = observer
        .access_log
        .then(|| (request.method().clone(), request.uri().path().to_owned()));
    let response = next.run(request).await;
    let latency = start.elapsed();
    let app = response.extensions().get::<AppName>().map_or("-", |a| &*a.0);
    let status = response.status().as_u16();
    observer.metrics.observe_request(app, status, latency);
    if let Some((method, path)) = access {
        tracing::info!(
            target: "crabcat::access",
            app,
            method = %method,
            path,
            status,
            latency_ms = format_args!("{:.3}", latency.as_secs_f64() * 1000.0),
            "request"
        );
    }
    response
}
