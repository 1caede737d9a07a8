//! The admin API: a separate listener (loopback by default) speaking JSON,
//! with bearer-token authentication on everything but `/health` and the
//! console's page (`/console`, which holds no data); and the
//! client the admin subcommands use.

mod auth;
mod backoff;
pub mod client;
mod cluster;
mod console;
mod handlers;
pub mod manager;
mod sessions;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use auth::{AdminToken, TokenError};

use crate::lifecycle::AppManager;
use crate::metrics::Metrics;

/// Uploads received at once; more get `503` with `Retry-After`.
pub const MAX_CONCURRENT_UPLOADS: usize = 2;

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
    /// Failed-token backoff per client address.
    pub backoff: backoff::Backoff,
    /// Uploads being received now (at most [`MAX_CONCURRENT_UPLOADS`]).
    pub uploads: tokio::sync::Semaphore,
    /// Largest module upload.
    pub max_upload_bytes: usize,
    /// The last session counts per app.
    pub session_counts: sessions::CountCache,
    /// Tomcat's manager text API; `None`: every call to it gets `401`.
    pub manager_text: Option<manager::TextApi>,
    /// This node's part in a cluster, if it is one: deployments made here
    /// are shared with every node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl AdminState {
    /// The admin state: `manager` and `metrics` to report on, `token` to
    /// check, uploads up to `max_upload_bytes`.
    pub fn new(
        manager: Arc<AppManager>,
        metrics: Arc<Metrics>,
        datasources: Arc<crate::db::Datasources>,
        token: AdminToken,
        max_upload_bytes: usize,
    ) -> Self {
        AdminState {
            manager,
            metrics,
            datasources,
            token,
            backoff: backoff::Backoff::default(),
            uploads: tokio::sync::Semaphore::new(MAX_CONCURRENT_UPLOADS),
            max_upload_bytes,
            session_counts: sessions::CountCache::default(),
            manager_text: None,
            cluster: None,
        }
    }

    /// The same state, serving Tomcat's manager text API as `text_api` says.
    pub fn with_manager_text(mut self, text_api: manager::TextApi) -> Self {
        self.manager_text = Some(text_api);
        self
    }

    /// Shares the deployments made through this API with `cluster`.
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// After app `name` was deployed (or reloaded) here through `via`:
    /// stores it in the cluster, if this node is in one.
    ///
    /// # Errors
    /// The cluster store failed: the app runs on this node only.
    pub async fn share_deploy(&self, name: &str, via: &str) -> Result<(), String> {
        let Some(cluster) = &self.cluster else { return Ok(()) };
        let who = format!("{} ({via})", cluster.node());
        cluster.publish(name, &who).await.map_err(|error| {
            tracing::error!(app = name, %error, "deployed on this node only: the cluster store failed");
            format!("{name} is deployed on this node only: storing it in the cluster failed ({error}); deploy it again")
        })
    }

    /// After app `name` was undeployed here through `via`: tells the cluster.
    ///
    /// # Errors
    /// The cluster store failed: the app is undeployed on this node only.
    pub async fn share_undeploy(&self, name: &str, via: &str) -> Result<(), String> {
        let Some(cluster) = &self.cluster else { return Ok(()) };
        let who = format!("{} ({via})", cluster.node());
        cluster.publish_undeploy(name, &who).await.map_err(|error| {
            tracing::error!(app = name, %error, "undeployed on this node only: the cluster store failed");
            format!("{name} is undeployed on this node only: telling the cluster failed ({error}); undeploy it again")
        })
    }
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
        .route("/apps/{name}/sessions/expire", post(sessions::expire_sessions))
        .route("/metrics", get(handlers::metrics))
        .route("/cluster", get(cluster::cluster))
        .merge(console::data_routes())
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_token,
        ));
    Router::new()
        .route("/health", get(handlers::health))
        .merge(console::pages())
        .merge(authenticated)
        .merge(manager::router(&state))
        .fallback(handlers::not_found)
        // The upload handler streams to disk and enforces its own limit.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
