//! # crabcat — the container
//!
//! A long-running process that loads application modules (Rust `cdylib`s
//! built with `crabcat-sdk`) from a deploy directory, drives their
//! lifecycle and routes HTTP requests to them.
//!
//! ## Layout
//!
//! * [`cli`]: the command line; `main.rs` stays thin.
//! * [`config`]: defaults < file < `CRABCAT__...` env < flags, one typed section per subsystem.
//! * [`deploy`]: the deploy directory and private staging copies (knows no ABI).
//! * [`abi`]: the only `unsafe` code: load and check a module, call it, the host vtable.
//! * [`lifecycle`]: the app state machine, instances and their draining, the manager.
//! * [`server`]: the axum router and layers, the context-path table, dispatch.
//!
//! A request goes: listener → layers (access log, timeout, body limit) →
//! [`server::dispatch`] → context table → app route table → module.

pub mod abi;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod lifecycle;
pub mod server;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::lifecycle::AppManager;

/// Why the container could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The staging directory could not be created.
    #[error(transparent)]
    Deploy(#[from] deploy::DeployError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Deploys every app, serves until `shutdown` is cancelled, then drains
/// and destroys every app.
///
/// # Errors
/// See [`RunError`].
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let config = Arc::new(config);
    let manager = AppManager::new(Arc::clone(&config))?;
    manager.deploy_all().await;
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(RunError::Serve)?;
    tracing::info!(addr = %local, "listening");
    let router = server::router(manager.table(), &config.server);
    let grace = config.server.shutdown_timeout;
    let finished = server::serve(listener, router, shutdown, grace)
        .await
        .map_err(RunError::Serve)?;
    manager
        .shutdown(if finished { grace } else { std::time::Duration::ZERO })
        .await;
    tracing::info!("stopped");
    Ok(())
}
