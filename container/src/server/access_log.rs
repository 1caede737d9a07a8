//! One log line per request: app, method, path, status, latency.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use super::dispatch::AppName;

/// Middleware writing the access log (target `crabcat::access`).
pub async fn access_log(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let app = response.extensions().get::<AppName>().map_or("-", |a| &*a.0);
    tracing::info!(
        target: "crabcat::access",
        app,
        method = %method,
        path,
        status = response.status().as_u16(),
        latency_ms = format_args!("{:.3}", start.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    response
}
