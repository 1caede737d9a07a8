//! The lifecycle manager: the one place that changes app state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::watch;

use super::instance::Instance;
use super::state::{AppState, Event};
use crate::abi::{HostApp, Module, ModuleInfo, RawInstance};
use crate::config::Config;
use crate::deploy::{self, Deployable, Staging};
use crate::server::routes::RouteTable;
use crate::server::{AppSlot, ContextTable};

/// What the container knows about one app; published on a watch channel.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    /// The app name.
    pub name: String,
    /// Its file in the deploy directory.
    pub file: PathBuf,
    /// Where it is mounted (`/` for the root app).
    pub context_path: String,
    /// Its lifecycle state (with the error, if failed).
    #[serde(flatten)]
    pub state: AppState,
    /// What the module says about itself, once loaded.
    pub module: Option<ModuleInfo>,
    /// When the state last changed.
    pub since: SystemTime,
}

/// Deploys apps, keeps their state, and stops them.
pub struct AppManager {
    config: Arc<Config>,
    staging: Staging,
    runtime: tokio::runtime::Handle,
    status: watch::Sender<BTreeMap<String, AppStatus>>,
    slots: Mutex<BTreeMap<String, Arc<AppSlot>>>,
    table: Arc<ArcSwap<ContextTable>>,
}

impl AppManager {
    /// A manager with no apps yet.
    ///
    /// # Errors
    /// If the staging directory cannot be created.
    pub fn new(config: Arc<Config>) -> Result<Self, deploy::DeployError> {
        Ok(AppManager {
            config,
            staging: Staging::create()?,
            runtime: tokio::runtime::Handle::current(),
            status: watch::channel(BTreeMap::new()).0,
            slots: Mutex::new(BTreeMap::new()),
            table: Arc::new(ArcSwap::from_pointee(ContextTable::default())),
        })
    }

    /// The context-path table the server routes with.
    pub fn table(&self) -> Arc<ArcSwap<ContextTable>> {
        Arc::clone(&self.table)
    }

    /// Every app's status, updated on each state change.
    pub fn subscribe(&self) -> watch::Receiver<BTreeMap<String, AppStatus>> {
        self.status.subscribe()
    }

    /// Deploys every library in the deploy directory, one after the other.
    /// Failures are logged and recorded; they never stop the others.
    pub async fn deploy_all(&self) {
        let dir = &self.config.deploy.dir;
        let found = match deploy::scan(dir) {
            Ok(found) => found,
            Err(error) => {
                tracing::error!(%error, "cannot read the deploy directory; no apps deployed");
                return;
            }
        };
        if found.is_empty() {
            tracing::warn!(dir = %dir.display(), "no modules in the deploy directory");
        }
        for item in found {
            match item {
                Ok(deployable) => self.deploy(deployable).await,
                Err(error) => tracing::error!(%error, "skipped a file in the deploy directory"),
            }
        }
    }

    /// Loads, checks and initialises one app, then mounts it.
    pub async fn deploy(&self, deployable: Deployable) {
        let Deployable { name, file } = deployable;
        let context_path = self.config.context_path(&name);
        if let Err(reason) = self.register(&name, &file, &context_path) {
            tracing::error!(app = %name, file = %file.display(), "not deployed: {reason}");
            return;
        }
        let started = Instant::now();
        match self.start(&name, &file, &context_path).await {
            Ok(instance) => {
                let routes = instance.routes().len();
                self.slot(&name).swap(Some(Arc::new(instance)));
                self.transition(&name, Event::Started);
                tracing::info!(
                    app = %name,
                    context_path,
                    routes,
                    file = %file.display(),
                    ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
                    "deployed"
                );
            }
            Err(reason) => {
                tracing::error!(app = %name, file = %file.display(), "deployment failed: {reason}");
                self.transition(&name, Event::Failed(reason));
            }
        }
    }

    /// Records a new app in state `loading` and mounts its (empty) slot.
    fn register(&self, name: &str, file: &std::path::Path, context_path: &str) -> Result<(), String> {
        let prefix: Arc<str> = if context_path == "/" {
            "".into()
        } else {
            context_path.into()
        };
        {
            let mut slots = self.slots.lock().expect("slots lock");
            if slots.contains_key(name) {
                let other = self.status.borrow().get(name).map(|s| s.file.display().to_string());
                return Err(format!(
                    "an app named {name} is already deployed from {}",
                    other.unwrap_or_default()
                ));
            }
            if let Some(other) = slots.values().find(|s| s.prefix == prefix) {
                return Err(format!(
                    "context path {context_path} is already used by app {}",
                    other.name
                ));
            }
            slots.insert(name.to_owned(), Arc::new(AppSlot::new(name.into(), prefix)));
            self.table.store(Arc::new(ContextTable::new(slots.values().cloned())));
        }
        self.status.send_modify(|apps| {
            apps.insert(
                name.to_owned(),
                AppStatus {
                    name: name.to_owned(),
                    file: file.to_path_buf(),
                    context_path: context_path.to_owned(),
                    state: AppState::Loading,
                    module: None,
                    since: SystemTime::now(),
                },
            );
        });
        Ok(())
    }

    /// Steps 1–4 of a deployment; the error is the reason to record.
    async fn start(&self, name: &str, file: &std::path::Path, context_path: &str) -> Result<Instance, String> {
        let module = self.load(name, file).await?;
        self.set_module_info(name, module.info().clone());
        self.transition(name, Event::Loaded);
        let document = self.init_document(name, context_path);
        let host_app = HostApp::leak(name.into(), self.runtime.clone());
        let (raw, specs) = tokio::task::spawn_blocking(move || RawInstance::init(module, host_app, &document))
            .await
            .map_err(|e| format!("init crashed: {e}"))?
            .map_err(|e| format!("init failed: {e}"))?;
        match RouteTable::build(&specs) {
            Ok(routes) => Ok(Instance::new(raw, routes)),
            Err(error) => {
                // `init` succeeded, so `destroy` must run: dropping `raw` does it.
                let _ = tokio::task::spawn_blocking(move || drop(raw)).await;
                Err(format!("bad routes: {error}"))
            }
        }
    }

    async fn load(&self, name: &str, file: &std::path::Path) -> Result<Arc<Module>, String> {
        let staged = self.staging.stage(name, file).map_err(|e| e.to_string())?;
        let file = file.to_path_buf();
        tokio::task::spawn_blocking(move || Module::load(staged.path(), &file))
            .await
            .map_err(|e| format!("loading crashed: {e}"))?
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }

    fn init_document(&self, name: &str, context_path: &str) -> Vec<u8> {
        let config = self.config.apps.get(name).map(|a| a.config.clone()).unwrap_or_default();
        let max_log_level = tracing::level_filters::LevelFilter::current()
            .to_string()
            .to_lowercase();
        let prefix = if context_path == "/" { "" } else { context_path };
        serde_json::to_vec(&serde_json::json!({
            "name": name,
            "context_path": prefix,
            "config": config,
            "max_log_level": max_log_level,
        }))
        .expect("a JSON value serialises")
    }

    fn slot(&self, name: &str) -> Arc<AppSlot> {
        Arc::clone(
            self.slots
                .lock()
                .expect("slots lock")
                .get(name)
                .expect("registered app"),
        )
    }

    fn set_module_info(&self, name: &str, info: ModuleInfo) {
        self.status.send_modify(|apps| {
            if let Some(app) = apps.get_mut(name) {
                app.module = Some(info);
            }
        });
    }

    /// Applies `event` to app `name`: the only place state changes.
    fn transition(&self, name: &str, event: Event) {
        self.status.send_modify(|apps| {
            let Some(app) = apps.get_mut(name) else { return };
            match app.state.next(event) {
                Ok(next) => {
                    tracing::debug!(app = name, from = app.state.name(), to = next.name(), "state changed");
                    app.state = next;
                    app.since = SystemTime::now();
                }
                Err(error) => tracing::error!(app = name, %error, "lifecycle bug"),
            }
        });
    }

    /// Stops every running app: takes it out of routing, drains it (all
    /// apps share one deadline, `grace` from now), cancels its tasks and
    /// calls `destroy` once.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let slots: Vec<Arc<AppSlot>> = self.slots.lock().expect("slots lock").values().cloned().collect();
        for slot in slots {
            let Some(instance) = slot.swap(None) else { continue };
            self.stop(&slot.name, instance, deadline.saturating_duration_since(Instant::now()))
                .await;
        }
    }

    async fn stop(&self, name: &str, instance: Arc<Instance>, grace: Duration) {
        self.transition(name, Event::Drain);
        let cancelled = instance.drain(grace).await;
        if cancelled > 0 {
            tracing::warn!(
                app = name,
                cancelled,
                "cancelled requests still running after the grace period"
            );
        }
        let destroyed = tokio::task::spawn_blocking(move || match Arc::try_unwrap(instance) {
            Ok(instance) => {
                drop(instance); // calls the module's destroy
                true
            }
            Err(_) => false,
        })
        .await
        .unwrap_or(false);
        if destroyed {
            tracing::info!(app = name, "destroyed");
        } else {
            tracing::warn!(
                app = name,
                "still referenced after draining; destroy runs when the last request ends"
            );
        }
        self.transition(name, Event::Drained);
    }
}
