//! Per-request observation: metrics for every request, and the access log
//! line (app, method, path, status, latency) when it is on.

use std::time::Duration;

use http::{Method, StatusCode};

use super::ServerState;
use super::context::AppSlot;

/// The method and path of a request, kept for its access log line.
pub struct Access {
    method: Method,
    path: String,
}

impl Access {
    /// What the access log needs of a request, if the log is on.
    pub fn capture(state: &ServerState, request: &axum::extract::Request) -> Option<Access> {
        state.access_log.then(|| Access {
            method: request.method().clone(),
            path: request.uri().path().to_owned(),
        })
    }
}

/// Records one finished request: metrics, and the access log line
/// (target `crabcat::access`) when `access` is given.
pub fn record(
    state: &ServerState,
    slot: Option<&AppSlot>,
    access: Option<Access>,
    status: StatusCode,
    latency: Duration,
) {
    let status = status.as_u16();
    match slot {
        Some(slot) => slot.metrics(&state.metrics).observe(status, latency),
        None => state.metrics.observe_request("-", status, latency),
    }
    if let Some(Access { method, path }) = access {
        let app = slot.map_or("-", |s| &*s.name);
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
}
