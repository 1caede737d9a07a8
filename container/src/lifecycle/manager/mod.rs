//! The lifecycle manager: the one place that changes app state. Operations
//! on one app are serialised by a per-app lock; different apps proceed
//! independently. What is known about the apps lives in the
//! [`Registry`]; turning a file into an instance is the [`Pipeline`]'s
//! job; ending an instance is [`retire`](super::retire)'s.
//!
//! The public operations (deploy, reload, install, stop, start, undeploy,
//! shutdown) are in `operations`; the steps they share (load and mount,
//! stop an instance, attach static files) in `steps`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::context::{AppSlot, ContextTable};
use super::pipeline::Pipeline;
use super::registry::Registry;
use super::status::AppStatus;
use crate::config::Config;
use crate::db::Datasources;
use crate::deploy::bundle::BundleLimits;
use crate::deploy::{self, Staging};
use crate::session::Store as SessionStore;

mod operations;
mod steps;

/// Deploys, reloads, stops, starts and undeploys apps, and keeps their state.
pub struct AppManager {
    config: Arc<Config>,
    pipeline: Pipeline,
    pub(super) registry: Registry,
    retiring: TaskTracker,
}

impl AppManager {
    /// A manager with no apps yet.
    ///
    /// # Errors
    /// If the staging directory cannot be created.
    pub fn new(config: Arc<Config>, datasources: Arc<Datasources>) -> Result<Self, deploy::DeployError> {
        // Validation made sure the datasource exists, if one is named.
        let sessions = datasources.get(&config.sessions.datasource);
        Ok(AppManager {
            pipeline: Pipeline {
                config: Arc::clone(&config),
                sessions: sessions.map(|ds| Arc::new(SessionStore::new(Arc::clone(ds)))),
                datasources,
                staging: Arc::new(Staging::create(BundleLimits {
                    max_bytes: config.deploy.max_bundle_bytes,
                    max_entries: config.deploy.max_bundle_entries,
                })?),
                runtime: tokio::runtime::Handle::current(),
            },
            config,
            registry: Registry::default(),
            retiring: TaskTracker::new(),
        })
    }

    /// The session store every app's sessions are kept in, unless
    /// sessions are off.
    pub fn sessions(&self) -> Option<&Arc<SessionStore>> {
        self.pipeline.sessions.as_ref()
    }

    /// The session idle timeout of app `name`'s running instance, if it
    /// runs and sessions are on.
    pub fn session_idle_timeout(&self, name: &str) -> Option<std::time::Duration> {
        let instance = self.slot(name)?.instance()?;
        Some(instance.host_app().sessions()?.settings().idle_timeout)
    }

    /// The context-path table the server routes with.
    pub fn table(&self) -> Arc<ArcSwap<ContextTable>> {
        self.registry.table()
    }

    /// Every app's status, updated on each change.
    pub fn subscribe(&self) -> watch::Receiver<BTreeMap<String, AppStatus>> {
        self.registry.subscribe()
    }

    /// The status of every app now.
    pub fn apps(&self) -> BTreeMap<String, AppStatus> {
        self.registry.apps()
    }

    /// Status updates published so far.
    pub fn publishes(&self) -> u64 {
        self.registry.publishes()
    }

    /// The routing slot of app `name` (for request counters).
    pub fn slot(&self, name: &str) -> Option<Arc<AppSlot>> {
        self.registry.slot(name)
    }

    /// The deploy directory.
    pub fn deploy_dir(&self) -> &Path {
        &self.config.deploy.dir
    }
}
