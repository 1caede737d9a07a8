//! Several containers as one, through PostgreSQL: a deployment made on any
//! node (admin API, CLI, Tomcat's manager) is stored in the cluster's
//! database (the bytes, their SHA-256, the version, who and when) and
//! announced with `NOTIFY`; every node `LISTEN`s, fetches it, checks the
//! hash and installs it with the usual zero-downtime swap, then records
//! what it runs. A node that starts, or whose connection drops, catches up
//! from the table. The pub/sub hub travels the same way (`bus`). No
//! process of our own, no protocol of our own.
//!
//! The rule for the deploy directory: in cluster mode, deployments come
//! from the cluster's store. Each node's deploy directory is where it keeps
//! its copy; the watcher is off, and an app found there that the cluster
//! does not know is reported as deployed on this node only.

mod bus;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use store::{NodeApp, Store};

use crate::config::ClusterConfig;
use crate::db::{Datasources, Pool};
use crate::lifecycle::{AppManager, AppState};

/// The `NOTIFY` channel deployments are announced on.
const CHANNEL: &str = "crabcat_cluster";
/// How long to wait before listening again after the connection failed.
const RETRY: Duration = Duration::from_secs(1);

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `cluster.datasource` is not a PostgreSQL datasource.
    #[error("cluster.datasource {0} must be a PostgreSQL datasource (LISTEN/NOTIFY)")]
    NotPostgres(String),
    /// No such datasource.
    #[error("cluster.datasource {0} is not a configured datasource")]
    Unknown(String),
    /// A query failed.
    #[error("the cluster store failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// This node's part in the cluster.
pub struct Cluster {
    node: String,
    store: Store,
    manager: Arc<AppManager>,
    /// How long to wait before trying a failed install again.
    retry_failed: Duration,
    /// Apps whose deployment this node failed to install, to try again.
    failed: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Woken when an app is added to `failed`.
    failure: tokio::sync::Notify,
}

impl Cluster {
    /// Cluster mode as `config` says, for this node (`node`: its name), or
    /// `None` when it is off.
    ///
    /// # Errors
    /// The datasource is missing or not PostgreSQL.
    pub fn new(
        config: &ClusterConfig,
        node: String,
        datasources: &Datasources,
        manager: Arc<AppManager>,
    ) -> Result<Option<Arc<Cluster>>, ClusterError> {
        if config.datasource.is_empty() {
            return Ok(None);
        }
        let ds = datasources
            .get(&config.datasource)
            .ok_or_else(|| ClusterError::Unknown(config.datasource.clone()))?;
        let Pool::Postgres(pool) = &ds.pool else {
            return Err(ClusterError::NotPostgres(config.datasource.clone()));
        };
        Ok(Some(Arc::new(Cluster {
            node,
            store: Store::new(pool.clone()),
            manager,
            retry_failed: config.retry,
            failed: std::sync::Mutex::default(),
            failure: tokio::sync::Notify::new(),
        })))
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Stores the file app `name` now runs from (after a successful local
    /// install) and announces it to every node. `who` says who deployed it.
    ///
    /// # Errors
    /// The file could not be read or the store written.
    pub async fn publish(&self, name: &str, who: &str) -> Result<(), ClusterError> {
        let status = self.manager.apps().remove(name);
        let Some(status) = status.filter(|s| s.state == AppState::Running) else {
            return Ok(()); // nothing runs: nothing to share
        };
        let file = status.file.clone();
        let bytes = tokio::fs::read(&file)
            .await
            .map_err(|source| ClusterError::Io { path: file, source })?;
        let sha256 = crate::deploy::sha256_hex(&bytes);
        let version = status.module.as_ref().map(|m| m.version.clone());
        let bundle = crate::deploy::is_bundle_name(&status.file);
        self.store
            .publish(name, &sha256, version.as_deref(), bundle, &bytes, who)
            .await?;
        tracing::info!(app = name, %sha256, node = %self.node, "deployment stored in the cluster and announced");
        Ok(())
    }

    /// Announces that app `name` is undeployed, on every node.
    ///
    /// # Errors
    /// The store could not be written.
    pub async fn publish_undeploy(&self, name: &str, who: &str) -> Result<(), ClusterError> {
        self.store.undeploy(name, who).await?;
        tracing::info!(app = name, node = %self.node, "undeployment stored in the cluster and announced");
        Ok(())
    }

    /// What every node says it runs.
    ///
    /// # Errors
    /// The store could not be read.
    pub async fn nodes(&self) -> Result<Vec<NodeApp>, ClusterError> {
        Ok(self.store.nodes().await?)
    }

    /// Listens for announcements until `shutdown`, catching up from the
    /// store at start and after every lost connection; and relays the hub
    /// between this node and the others.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        bus::start(&self, &shutdown);
        tokio::spawn(Arc::clone(&self).retry_failed(shutdown.clone()));
        loop {
            tokio::select! {
                () = self.listen() => {}
                () = shutdown.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Tries again, every `cluster.retry`, the deployments this node failed
    /// to install (a module whose `init` failed while its database was
    /// down, say). Sleeps while nothing failed.
    async fn retry_failed(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if self.failed_apps().is_empty() {
                tokio::select! {
                    () = self.failure.notified() => {}
                    () = shutdown.cancelled() => return,
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.retry_failed) => {}
                () = shutdown.cancelled() => return,
            }
            for name in self.failed_apps() {
                tracing::info!(app = %name, "trying the cluster's deployment again");
                self.apply(&name).await;
            }
        }
    }

    fn failed_apps(&self) -> Vec<String> {
        let failed = self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        failed.iter().cloned().collect()
    }

    /// One connection's worth of listening; returns when it is lost.
    async fn listen(&self) {
        let mut listener = match self.store.listener(CHANNEL).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen to the cluster; retrying");
                return;
            }
        };
        // Listening first, then catching up: nothing announced in between is missed.
        self.catch_up().await;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => self.apply(notification.payload()).await,
                Ok(None) => {
                    tracing::warn!("lost the connection to the cluster; catching up once it is back");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "listening to the cluster failed; retrying");
                    return;
                }
            }
        }
    }

    /// Installs whatever the store has that this node does not run.
    async fn catch_up(&self) {
        let apps = match self.store.apps().await {
            Ok(apps) => apps,
            Err(error) => {
                tracing::warn!(%error, "cannot read the cluster's deployments");
                return;
            }
        };
        for app in &apps {
            self.apply(app).await;
        }
        for (name, _) in self.manager.apps() {
            if !apps.contains(&name) {
                tracing::warn!(
                    app = %name,
                    "deployed on this node only: the cluster does not know it (deploy it through the admin API to share it)"
                );
            }
        }
    }

    /// Brings app `name` to what the store says, and records the outcome.
    async fn apply(&self, name: &str) {
        let outcome = self.bring(name).await;
        let status = self.manager.apps().remove(name);
        let (state, error) = match (&outcome, &status) {
            (Err(error), _) => ("failed", Some(error.clone())),
            (Ok(()), Some(status)) => (status.state.name(), status.last_error.clone()),
            (Ok(()), None) => ("undeployed", None),
        };
        {
            let mut failed = self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if outcome.is_err() {
                failed.insert(name.to_owned());
                self.failure.notify_one();
            } else {
                failed.remove(name);
            }
        }
        if let Err(e) = &outcome {
            tracing::error!(app = name, error = %e, "could not apply the cluster's deployment; the running version stays (tried again after cluster.retry)");
        }
        let sha256 = status.as_ref().and_then(|s| s.sha256.clone());
        let version = status
            .as_ref()
            .and_then(|s| s.module.as_ref().map(|m| m.version.clone()));
        let record = self.store.record(
            &self.node,
            name,
            sha256.as_deref(),
            version.as_deref(),
            state,
            error.as_deref(),
        );
        if let Err(error) = record.await {
            tracing::warn!(app = name, %error, "could not record this node's state in the cluster");
        }
    }

    async fn bring(&self, name: &str) -> Result<(), String> {
        let Some(wanted) = self.store.deployment(name).await.map_err(|e| e.to_string())? else {
            return Ok(()); // unknown to the store
        };
        let running = self.manager.apps().remove(name);
        let Some(bytes) = wanted.bytes else {
            if running.is_some() {
                self.manager.undeploy(name, true).await.map_err(|e| e.to_string())?;
                tracing::info!(app = name, by = %wanted.deployed_by, "undeployed, as the cluster says");
            }
            return Ok(());
        };
        if running.as_ref().and_then(|s| s.sha256.as_deref()) == Some(wanted.sha256.as_str()) {
            return Ok(()); // runs it already
        }
        let got = crate::deploy::sha256_hex(&bytes);
        if got != wanted.sha256 {
            return Err(format!(
                "the cluster's copy is damaged: its SHA-256 is {got}, the deployment says {}",
                wanted.sha256
            ));
        }
        let upload = self.write_upload(name, &bytes).await.map_err(|e| e.to_string())?;
        let result = self.manager.install(name, &upload).await;
        let _ = tokio::fs::remove_file(&upload).await; // still there unless installed
        result.map_err(|e| crate::lifecycle::chain(&e))?;
        tracing::info!(
            app = name,
            sha256 = %wanted.sha256,
            by = %wanted.deployed_by,
            "installed the cluster's deployment"
        );
        Ok(())
    }

    /// Writes `bytes` to a hidden file in the deploy directory, for `install`.
    async fn write_upload(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, ClusterError> {
        let path: PathBuf = self
            .manager
            .deploy_dir()
            .join(format!(".{name}.cluster-{:016x}", rand::random::<u64>()));
        tokio::fs::write(&path, bytes)
            .await
            .map_err(|source| ClusterError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(path)
    }
}

/// The default node name: this host's name and the HTTP port.
pub fn default_node_name(listen: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", listen.port())
}
