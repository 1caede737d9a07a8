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
//! * [`deploy`]: the deploy directory, private staging copies, app bundles (knows no ABI).
//! * [`abi`]: the only `unsafe` code: load and check a module, call it, the host vtable.
//! * [`db`]: datasources (sqlx pools), module queries, transactions, migrations.
//! * [`lifecycle`]: the app state machine, instances and their draining, the manager, the routing tables.
//! * [`metrics`]: the Prometheus registry every part records into.
//! * [`server`]: the listener and its TLS, the HTTP service (one tower `Service`, no router), the context-path table, dispatch, static files, metrics, the access log.
//! * [`admin`]: the admin API (its own listener, token auth), the operations
//!   console it serves at `/console`, Tomcat's manager text API, and its CLI client.
//! * [`cluster`]: several containers sharing deployments through PostgreSQL (`LISTEN`/`NOTIFY`).
//! * [`session`]: HTTP sessions the container keeps for its apps, in a datasource.
//! * [`watchdog`]: notices module code that runs without yielding, and reports its app.
//! * [`package`] and [`new`]: `crabcat package` (an app crate → a bundle) and
//!   `crabcat new` (a new app crate from templates); not part of the server.
//!
//! A request goes: listener → [`server::dispatch`] (timeout, body limit,
//! metrics, access log) → context table → app route table → module.

pub mod abi;
pub mod admin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod deploy;
pub mod hub;
pub mod lifecycle;
pub mod metrics;
pub mod new;
pub mod package;
pub mod server;
pub mod session;
pub mod striped;
pub mod watchdog;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::lifecycle::AppManager;

/// Why the container could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The staging directory could not be created.
    #[error(transparent)]
    Deploy(#[from] deploy::DeployError),
    /// No admin token could be set up.
    #[error(transparent)]
    Token(#[from] admin::TokenError),
    /// The manager text API's password file cannot be read.
    #[error(transparent)]
    ManagerPassword(#[from] admin::manager::PasswordError),
    /// A datasource could not be set up.
    #[error(transparent)]
    Datasource(#[from] db::SetupError),
    /// The access log could not be opened.
    #[error(transparent)]
    AccessLog(#[from] server::AccessLogError),
    /// Cluster mode could not start.
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    /// The TLS certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] server::TlsError),
    /// A `[static]` directory cannot be served.
    #[error(transparent)]
    Static(#[from] lifecycle::StaticRootError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
    /// The shutdown grace period ran out and requests still running were
    /// cancelled (everything else shut down cleanly).
    #[error("requests still running after server.shutdown_timeout ({0:?}) were cancelled")]
    RequestsCancelled(std::time::Duration),
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })
}

/// Loads the TLS certificate, binds the listeners, deploys every app,
/// starts the admin API and the deploy-directory watcher, serves until
/// `shutdown` is cancelled, then drains and destroys every app. Each
/// notification of `reload_tls` (`main` sends one on SIGHUP) reloads the
/// TLS certificate.
///
/// # Errors
/// See [`RunError`].
pub async fn run(config: Config, shutdown: CancellationToken, reload_tls: Arc<Notify>) -> Result<(), RunError> {
    let config = Arc::new(config);
    // A certificate that cannot be used stops the start before any port is bound.
    let tls = match &config.server.tls {
        Some(files) => Some(Arc::new(server::Tls::load(files)?)),
        None => None,
    };
    let tls_reloader = tls.as_ref().map(|tls| server::tls::TlsReloader::new(Arc::clone(tls)));
    // So is a static directory that cannot be served.
    let mounts = server::static_files::Mounts::open(&config.statics)?;
    // Bound first, as Tomcat's connectors bind at init: a port that is
    // taken stops the start before any app runs its migrations or `init`.
    // Connections wait in the backlog until the apps are deployed.
    let listener = bind(config.server.listen).await?;
    let admin_listener = bind(config.admin.listen).await?;
    let token = admin::AdminToken::resolve(&config.admin)?;
    let manager_credentials = admin::manager::Credentials::resolve(&config.admin.manager, &token)?;
    let datasources = Arc::new(db::Datasources::from_config(&config.datasources)?);
    let manager = Arc::new(AppManager::new(Arc::clone(&config), Arc::clone(&datasources))?);
    // The watcher's snapshot is taken before the first scan, so a file
    // dropped in while apps deploy is picked up, not missed.
    let metrics = Arc::new(metrics::Metrics::default());
    let s = &config.server;
    let access_log = s
        .access_log
        .then(|| {
            server::AccessLog::start(
                s.access_log_file.as_deref(),
                s.access_log_format,
                metrics.access_log_dropped(),
            )
        })
        .transpose()?;
    let clustered = !config.cluster.datasource.is_empty();
    if clustered && config.deploy.watch {
        tracing::info!(
            "cluster mode: deployments come from the cluster (admin API, CLI, manager API); the deploy directory is not watched"
        );
    }
    let watcher = (config.deploy.watch && !clustered).then(|| {
        let d = &config.deploy;
        deploy::Watcher::new(&d.dir, d.settle_time, d.scan_interval).with_counters(metrics.deploy_scans())
    });
    watchdog::start(config.server.stall_timeout);
    manager.deploy_all().await;

    let node = match &config.cluster.node {
        Some(node) => node.clone(),
        None => cluster::default_node_name(listener.local_addr().map_err(RunError::Serve)?),
    };
    let cluster = cluster::Cluster::new(&config.cluster, node, &datasources, Arc::clone(&manager))?;
    if let Some(cluster) = &cluster {
        tracing::info!(node = cluster.node(), "joining the cluster");
        tokio::spawn(Arc::clone(cluster).run(shutdown.clone()));
    }

    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %listener.local_addr().map_err(RunError::Serve)?, %scheme, "listening");
    tracing::info!(addr = %admin_listener.local_addr().map_err(RunError::Serve)?, "admin API listening");

    let admin_state = Arc::new(
        admin::AdminState::new(
            Arc::clone(&manager),
            Arc::clone(&metrics),
            datasources,
            token,
            config.admin.max_upload_bytes,
        )
        .with_manager_text(admin::manager::TextApi::new(Arc::clone(&config), manager_credentials))
        .with_cluster(cluster),
    );
    let admin_router = admin::router(admin_state);
    let admin_shutdown = shutdown.clone();
    let admin_task = tokio::spawn(async move {
        let admin = admin_router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(admin_listener, admin)
            .with_graceful_shutdown(async move { admin_shutdown.cancelled().await })
            .await
    });
    if let Some(watcher) = watcher {
        spawn_watcher(watcher, &config, &manager, &shutdown);
    }
    if let Some(reloader) = tls_reloader {
        tokio::spawn(reloader.run(reload_tls, shutdown.clone()));
    }
    if let Some(store) = manager.sessions() {
        let interval = config.sessions.sweep_interval;
        tokio::spawn(session::sweep(Arc::clone(store), interval, shutdown.clone()));
    }

    let (access_log, access_log_writer) = access_log.unzip();
    let service = server::MakeDispatcher::new(
        manager.table(),
        mounts,
        metrics,
        access_log,
        &config.server,
        &config.deploy,
    );
    let grace = config.server.shutdown_timeout;
    let limits = server::Limits::from(&config.server);
    let finished = server::serve(listener, service, limits, tls, shutdown.clone(), grace).await;
    admin_task.abort();
    manager
        .shutdown(if finished { grace } else { std::time::Duration::ZERO })
        .await;
    if let Some(writer) = access_log_writer {
        writer.finish(std::time::Duration::from_secs(10)).await;
    }
    tracing::info!("stopped");
    // Supervisors (systemd, Kubernetes) see from the exit code that the
    // shutdown was not clean.
    if finished {
        Ok(())
    } else {
        Err(RunError::RequestsCancelled(grace))
    }
}

fn spawn_watcher(watcher: deploy::Watcher, config: &Config, manager: &Arc<AppManager>, shutdown: &CancellationToken) {
    let (changes, mut received) = tokio::sync::mpsc::channel(64);
    tokio::spawn(watcher.run(changes, shutdown.clone()));
    let manager = Arc::clone(manager);
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                () = shutdown.cancelled() => return,
                change = received.recv() => change,
            };
            let Some(change) = change else { return };
            manager.apply(change).await;
        }
    });
    tracing::info!(dir = %config.deploy.dir.display(), "watching the deploy directory");
}
