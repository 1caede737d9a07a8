//! The admin API: a separate listener (loopback by default) speaking JSON,
//! with bearer-token authentication on everything but `/health`; and the
//! client the admin subcommands use.

mod auth;
pub mod client;
mod handlers;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use auth::{AdminToken, TokenError};

use crate::lifecycle::AppManager;
use crate::metrics::Metrics;

/// Largest module upload accepted.
pub const MAX_UPLOAD_BYTES: usize = 512 * 1024 * 1024;

/// What the admin handlers share.
pub struct AdminState {
    /// The lifecycle manager.
    pub manager: Arc<AppManager>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The datasources, for pool metrics.
    pub datasources: Arc<crate::db::Datasources>,
    /// The bearer token.
    pub token: AdminToken,
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    let authenticated = Router::new()
        .route("/apps", get(handlers::list))
        .route(
            "/apps/{name}",
            get(handlers::show).put(handlers::upload).delete(handlers::undeploy),
        )
        .route("/apps/{name}/reload", post(handlers::reload))
        .route("/apps/{name}/stop", post(handlers::stop))
        .route("/apps/{name}/start", post(handlers::start))
        .route("/metrics", get(handlers::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_token,
        ));
    Router::new()
        .route("/health", get(handlers::health))
        .merge(authenticated)
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(state)
}
