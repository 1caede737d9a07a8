//! Per-request observation: metrics for every request, and the access log
//! line when the log is on.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::HttpBody as _;
use axum::response::Response;

use std::sync::Arc;

use http::header::CONTENT_LENGTH;

use super::ServerState;
use super::access_log::Access;
use crate::metrics::AppMetrics;

/// Records one finished request: metrics, and the access log line when
/// `access` was captured. `owner` is the app (or static mount) that
/// answered, by name, with its metric handles.
pub fn record(
    state: &ServerState,
    peer: IpAddr,
    owner: Option<(&Arc<str>, &AppMetrics)>,
    access: Option<&Access>,
    response: &Response,
    latency: Duration,
) {
    let status = response.status().as_u16();
    match owner {
        Some((_, metrics)) => metrics.observe(status, latency),
        None => state.metrics.observe_request("-", status, latency),
    }
    if let (Some(log), Some(access)) = (&state.access_log, access) {
        // A file streamed from disk knows its size only from its header.
        let bytes = response.body().size_hint().exact().or_else(|| {
            let length = response.headers().get(CONTENT_LENGTH)?;
            length.to_str().ok()?.parse().ok()
        });
        log.record(access, peer, status, bytes, latency, owner.map(|(name, _)| &**name));
    }
}
