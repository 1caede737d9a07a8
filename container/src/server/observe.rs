//! Per-request observation: metrics for every request, and the access log
//! line when the log is on.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::HttpBody as _;
use axum::response::Response;

use super::ServerState;
use super::access_log::Access;
use crate::lifecycle::AppSlot;

/// Records one finished request: metrics, and the access log line when
/// `access` was captured.
pub fn record(
    state: &ServerState,
    peer: IpAddr,
    slot: Option<&AppSlot>,
    access: Option<Access>,
    response: &Response,
    latency: Duration,
) {
    let status = response.status().as_u16();
    match slot {
        Some(slot) => slot.metrics(&state.metrics).observe(status, latency),
        None => state.metrics.observe_request("-", status, latency),
    }
    if let (Some(log), Some(access)) = (&state.access_log, access) {
        let bytes = response.body().size_hint().exact();
        log.record(access, peer, status, bytes, latency, slot.map(|s| s.name.clone()));
    }
}
