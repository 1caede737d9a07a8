//! The lifecycle manager: the one place that changes app state. Operations
//! on one app are serialised by a per-app lock; different apps proceed
//! independently.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::context::{AppSlot, ContextTable};
use super::instance::Instance;
use super::routes::RouteTable;
use super::state::{AppState, Event};
use super::status::{AppStatus, ManagerError, Outcome};
use crate::abi::{HostApp, MigrationSpec, Module, ModuleInfo, RawInstance, migrations_of};
use crate::config::Config;
use crate::db::{AppData, AppMigration, Datasources, apply_app_migrations};
use crate::deploy::{self, Change, Deployable, Marker, Staging};

/// A freshly loaded and initialised instance, not yet mounted.
struct Loaded {
    instance: Instance,
    info: ModuleInfo,
    sha256: String,
}

/// Deploys, reloads, stops, starts and undeploys apps, and keeps their state.
pub struct AppManager {
    config: Arc<Config>,
    datasources: Arc<Datasources>,
    staging: Arc<Staging>,
    runtime: tokio::runtime::Handle,
    status: watch::Sender<BTreeMap<String, AppStatus>>,
    slots: Mutex<BTreeMap<String, Arc<AppSlot>>>,
    table: Arc<ArcSwap<ContextTable>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    retiring: TaskTracker,
}

impl AppManager {
    /// A manager with no apps yet.
    ///
    /// # Errors
    /// If the staging directory cannot be created.
    pub fn new(config: Arc<Config>, datasources: Arc<Datasources>) -> Result<Self, deploy::DeployError> {
        Ok(AppManager {
            config,
            datasources,
            staging: Arc::new(Staging::create()?),
            runtime: tokio::runtime::Handle::current(),
            status: watch::channel(BTreeMap::new()).0,
            slots: Mutex::new(BTreeMap::new()),
            table: Arc::new(ArcSwap::from_pointee(ContextTable::default())),
            locks: Mutex::new(HashMap::new()),
            retiring: TaskTracker::new(),
        })
    }

    /// The context-path table the server routes with.
    pub fn table(&self) -> Arc<ArcSwap<ContextTable>> {
        Arc::clone(&self.table)
    }

    /// Every app's status, updated on each change.
    pub fn subscribe(&self) -> watch::Receiver<BTreeMap<String, AppStatus>> {
        self.status.subscribe()
    }

    /// The status of every app now.
    pub fn apps(&self) -> BTreeMap<String, AppStatus> {
        self.status.borrow().clone()
    }

    /// The routing slot of app `name` (for request counters).
    pub fn slot(&self, name: &str) -> Option<Arc<AppSlot>> {
        self.slots.lock().expect("slots lock").get(name).cloned()
    }

    /// The deploy directory.
    pub fn deploy_dir(&self) -> &Path {
        &self.config.deploy.dir
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
                Ok(deployable) => {
                    let _ = self.deploy(&deployable.name, &deployable.file, &deployable.file).await;
                }
                Err(error) => tracing::error!(%error, "skipped a file in the deploy directory"),
            }
        }
    }

    /// Acts on a settled change in the deploy directory.
    pub async fn apply(&self, change: Change) {
        let result = match &change {
            Change::Added(d) | Change::Changed(d) => self.redeploy_file(d).await,
            Change::Removed(d) => self.undeploy_file(d).await,
        };
        match result {
            Ok(outcome) => tracing::debug!(?change, ?outcome, "deploy directory change handled"),
            Err(error) => tracing::debug!(?change, %error, "deploy directory change refused"),
        }
    }

    async fn redeploy_file(&self, d: &Deployable) -> Result<Outcome, ManagerError> {
        let Some(current) = self.status.borrow().get(&d.name).cloned() else {
            return self.deploy(&d.name, &d.file, &d.file).await;
        };
        if current.file != d.file {
            let reason = format!(
                "an app named {} is already deployed from {}",
                d.name,
                current.file.display()
            );
            tracing::error!(app = %d.name, file = %d.file.display(), "not deployed: {reason}");
            return Err(ManagerError::Conflict(reason));
        }
        match current.state {
            AppState::Stopped => {
                tracing::info!(app = %d.name, "file changed while stopped; start the app to load it");
                Ok(Outcome::Unchanged)
            }
            _ => self.reload(&d.name, None, false).await,
        }
    }

    async fn undeploy_file(&self, d: &Deployable) -> Result<Outcome, ManagerError> {
        let matches = self.status.borrow().get(&d.name).is_some_and(|s| s.file == d.file);
        if !matches {
            return Err(ManagerError::UnknownApp(d.name.clone()));
        }
        self.undeploy(&d.name, false).await
    }

    /// Deploys a new app `name` whose library is read from `source` and
    /// lives at `file` in the deploy directory (the same path, except for
    /// uploads, which are renamed into place only once they work).
    ///
    /// # Errors
    /// [`ManagerError::Conflict`] if the name or context path is taken,
    /// [`ManagerError::Refused`] if the module failed to load or init.
    pub async fn deploy(&self, name: &str, source: &Path, file: &Path) -> Result<Outcome, ManagerError> {
        let lock = self.lock(name);
        let _guard = lock.lock().await;
        let context_path = self.config.context_path(name);
        if let Err(reason) = self.register(name, file, &context_path) {
            tracing::error!(app = name, file = %file.display(), "not deployed: {reason}");
            return Err(ManagerError::Conflict(reason));
        }
        self.load_and_mount(name, source, file)
            .await
            .map(|()| Outcome::Deployed)
    }

    /// Loads `source` for the registered app `name` (state `loading`) and
    /// mounts it, or records the failure.
    async fn load_and_mount(&self, name: &str, source: &Path, file: &Path) -> Result<(), ManagerError> {
        let started = Instant::now();
        let context_path = self.config.context_path(name);
        match self.load(name, source, file, &context_path).await {
            Ok(loaded) => {
                self.mount(name, loaded, file);
                tracing::info!(
                    app = name,
                    context_path,
                    file = %file.display(),
                    ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
                    "deployed"
                );
                Ok(())
            }
            Err(reason) => {
                tracing::error!(app = name, file = %file.display(), "deployment failed: {reason}");
                self.transition(name, Event::Failed(reason.clone()));
                self.update(name, |s| s.last_error = Some(reason.clone()));
                deploy::write_marker(file, Some((Marker::Failed, &reason)));
                Err(ManagerError::Refused(reason))
            }
        }
    }

    /// Puts a loaded instance in the app's slot: new requests reach it at once.
    fn mount(&self, name: &str, loaded: Loaded, file: &Path) -> Option<Arc<Instance>> {
        let Loaded { instance, info, sha256 } = loaded;
        let text = format!("{} {} sha256:{sha256}\n", info.crate_name, info.version);
        let previous = self.slot(name)?.swap(Some(Arc::new(instance)));
        self.update(name, |s| {
            s.module = Some(info);
            s.sha256 = Some(sha256);
            s.loaded_at = Some(SystemTime::now());
            s.last_error = None;
        });
        if previous.is_none() {
            self.transition(name, Event::Started);
        }
        deploy::write_marker(file, Some((Marker::Deployed, &text)));
        previous
    }

    /// Replaces the running version of `name` with the library at `source`
    /// (default: its file in the deploy directory), blue/green: the new
    /// instance is loaded and initialised beside the old one, then swapped
    /// in; the old one drains and is destroyed in the background. A stopped
    /// or failed app is started instead. Without `force`, a library with the
    /// SHA-256 of the running one is left alone ([`Outcome::Unchanged`]).
    ///
    /// # Errors
    /// [`ManagerError::UnknownApp`], or [`ManagerError::Refused`] with the
    /// reason, in which case the old version goes on serving.
    pub async fn reload(&self, name: &str, source: Option<&Path>, force: bool) -> Result<Outcome, ManagerError> {
        let lock = self.lock(name);
        let _guard = lock.lock().await;
        self.reload_locked(name, source, force).await
    }

    /// Installs an uploaded library as app `name`: loaded, checked and
    /// initialised from `upload` (beside the running version, if any), and
    /// only then renamed to the app's file in the deploy directory, all
    /// under the app's lock, so the watcher never sees a half-done install.
    /// A refused module leaves the running version (or no app) in place.
    ///
    /// # Errors
    /// As [`deploy`](Self::deploy) and [`reload`](Self::reload).
    pub async fn install(&self, name: &str, upload: &Path) -> Result<Outcome, ManagerError> {
        let lock = self.lock(name);
        let _guard = lock.lock().await;
        let known = self.status.borrow().get(name).map(|s| s.file.clone());
        let (target, result) = match known {
            Some(file) => (file, self.reload_locked(name, Some(upload), false).await),
            None => {
                let target = self.deploy_dir().join(deploy::file_name(name));
                let context_path = self.config.context_path(name);
                self.register(name, &target, &context_path)
                    .map_err(ManagerError::Conflict)?;
                let result = self.load_and_mount(name, upload, &target).await;
                if result.is_err() {
                    // Nothing was deployed: forget the attempt entirely.
                    let _ = self.undeploy_locked(name, false).await;
                }
                (target, result.map(|()| Outcome::Deployed))
            }
        };
        if let Ok(Outcome::Deployed | Outcome::Reloaded | Outcome::Started) = result {
            std::fs::rename(upload, &target).map_err(|e| ManagerError::Io(format!("{}: {e}", target.display())))?;
        }
        result
    }

    async fn reload_locked(&self, name: &str, source: Option<&Path>, force: bool) -> Result<Outcome, ManagerError> {
        let current = self.current(name)?;
        let source = source.unwrap_or(&current.file);
        if !matches!(current.state, AppState::Running) {
            return self.start_locked(name, source, &current).await;
        }
        if !force {
            let file = source.to_path_buf();
            let sha256 = tokio::task::spawn_blocking(move || deploy::sha256_file(&file))
                .await
                .map_err(|e| ManagerError::Io(format!("hashing crashed: {e}")))?
                .map_err(|e| ManagerError::Io(format!("{}: {e}", source.display())))?;
            if current.sha256.as_deref() == Some(sha256.as_str()) {
                return Ok(Outcome::Unchanged);
            }
        }
        let started = Instant::now();
        let loaded = match self.load(name, source, &current.file, &current.context_path).await {
            Ok(loaded) => loaded,
            Err(reason) => {
                tracing::error!(app = name, file = %current.file.display(), "reload failed, the previous version keeps serving: {reason}");
                self.update(name, |s| s.last_error = Some(reason.clone()));
                let text = format!("reload failed (the previous version keeps serving): {reason}");
                deploy::write_marker(&current.file, Some((Marker::Failed, &text)));
                return Err(ManagerError::Refused(reason));
            }
        };
        let old = self.mount(name, loaded, &current.file);
        self.update(name, |s| s.reloads += 1);
        tracing::info!(
            app = name,
            ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
            "reloaded"
        );
        if let Some(old) = old {
            self.retire_in_background(name, old);
        }
        Ok(Outcome::Reloaded)
    }

    /// Stops app `name`: out of routing (requests get 503), drained,
    /// destroyed. Its file stays deployed.
    ///
    /// # Errors
    /// [`ManagerError::UnknownApp`], or [`ManagerError::Conflict`] if it is
    /// not running.
    pub async fn stop(&self, name: &str) -> Result<Outcome, ManagerError> {
        let lock = self.lock(name);
        let _guard = lock.lock().await;
        let current = self.current(name)?;
        let instance = self.slot(name).and_then(|slot| slot.swap(None));
        let Some(instance) = instance else {
            return Err(ManagerError::Conflict(format!(
                "{name} is not running (state: {})",
                current.state
            )));
        };
        self.stop_instance(name, instance, self.config.deploy.drain_timeout)
            .await;
        deploy::write_marker(&current.file, Some((Marker::Stopped, "stopped by an operator\n")));
        Ok(Outcome::Stopped)
    }

    /// Starts a stopped or failed app from its file.
    ///
    /// # Errors
    /// [`ManagerError::UnknownApp`], [`ManagerError::Conflict`] if it is
    /// running, [`ManagerError::Refused`] if it failed to load or init.
    pub async fn start(&self, name: &str) -> Result<Outcome, ManagerError> {
        let lock = self.lock(name);
        let _guard = lock.lock().await;
        let current = self.current(name)?;
        self.start_locked(name, &current.file, &current).await
    }

    async fn start_locked(&self, name: &str, source: &Path, current: &AppStatus) -> Result<Outcome, ManagerError> {
        if !matches!(current.state, AppState::Stopped | AppState::Failed(_)) {
            return Err(ManagerError::Conflict(format!("{name} is {}", current.state)));
        }
        self.transition(name, Event::Load);
        self.load_and_mount(name, source, &current.file)
            .await
            .map(|()| Outcome::Started)
    }

    /// Undeploys app `name`: stops it if running, forgets it, removes its
    /// markers and, with `remove_file`, its library.
    ///
    /// # Errors
    /// [`ManagerError::UnknownApp`], or [`ManagerError::Io`] if the file
    /// cannot be removed (the app is undeployed all the same).
    pub async fn undeploy(&self, name: &str, remove_file: bool) -> Result<Outcome, ManagerError> {
        let lock = self.lock(name);
        let _guard = lock.lock().await;
        self.undeploy_locked(name, remove_file).await
    }

    async fn undeploy_locked(&self, name: &str, remove_file: bool) -> Result<Outcome, ManagerError> {
        let current = self.current(name)?;
        if let Some(instance) = self.slot(name).and_then(|slot| slot.swap(None)) {
            self.stop_instance(name, instance, self.config.deploy.drain_timeout)
                .await;
        }
        {
            let mut slots = self.slots.lock().expect("slots lock");
            slots.remove(name);
            self.table.store(Arc::new(ContextTable::new(slots.values().cloned())));
        }
        self.status.send_modify(|apps| {
            apps.remove(name);
        });
        self.locks.lock().expect("locks lock").remove(name);
        deploy::write_marker(&current.file, None);
        tracing::info!(app = name, "undeployed");
        if remove_file && let Err(e) = std::fs::remove_file(&current.file) {
            return Err(ManagerError::Io(format!("{}: {e}", current.file.display())));
        }
        Ok(Outcome::Undeployed)
    }

    /// Stops every app: out of routing, drained (all apps share one
    /// deadline, `grace` from now), destroyed; then waits for instances
    /// retired by reloads.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let slots: Vec<Arc<AppSlot>> = self.slots.lock().expect("slots lock").values().cloned().collect();
        for slot in slots {
            let lock = self.lock(&slot.name);
            let _guard = lock.lock().await;
            let Some(instance) = slot.swap(None) else { continue };
            let left = deadline.saturating_duration_since(Instant::now());
            self.stop_instance(&slot.name, instance, left).await;
        }
        self.retiring.close();
        self.retiring.wait().await;
    }

    async fn stop_instance(&self, name: &str, instance: Arc<Instance>, grace: Duration) {
        self.transition(name, Event::Drain);
        retire(name, instance, grace).await;
        self.transition(name, Event::Drained);
    }

    fn retire_in_background(&self, name: &str, old: Arc<Instance>) {
        let name = name.to_owned();
        let grace = self.config.deploy.drain_timeout;
        self.retiring.spawn(async move { retire(&name, old, grace).await });
    }

    /// Stages, loads, checks and initialises `source` for app `name`
    /// (errors name `file`, the app's file in the deploy directory).
    async fn load(&self, name: &str, source: &Path, file: &Path, context_path: &str) -> Result<Loaded, String> {
        let staging = Arc::clone(&self.staging);
        let (app, from) = (name.to_owned(), source.to_path_buf());
        let staged = tokio::task::spawn_blocking(move || staging.stage(&app, &from))
            .await
            .map_err(|e| format!("staging crashed: {e}"))?
            .map_err(|e| e.to_string())?;
        let sha256 = staged.sha256().to_owned();
        let file = file.to_path_buf();
        let module = tokio::task::spawn_blocking(move || Module::load(staged.path(), &file))
            .await
            .map_err(|e| format!("loading crashed: {e}"))?
            .map(Arc::new)
            .map_err(|e| e.to_string())?;
        let (info, mapped_bytes) = (module.info().clone(), module.mapped_bytes());
        // Counted now: the image stays loaded even if init fails.
        self.update(name, |s| {
            s.images += 1;
            s.image_bytes += mapped_bytes;
        });
        if self.current(name).is_ok_and(|s| s.state == AppState::Loading) {
            self.transition(name, Event::Loaded);
        }
        let data = Arc::new(self.app_data(name)?);
        let for_migrations = Arc::clone(&module);
        let specs = tokio::task::spawn_blocking(move || migrations_of(&for_migrations))
            .await
            .map_err(|e| format!("listing migrations crashed: {e}"))?;
        self.migrate(&data, &specs).await?;
        let document = self.init_document(name, context_path);
        let host_app = HostApp::leak(name.into(), self.runtime.clone());
        let (raw, specs) = tokio::task::spawn_blocking(move || RawInstance::init(module, host_app, &document))
            .await
            .map_err(|e| format!("init crashed: {e}"))?
            .map_err(|e| format!("init failed: {e}"))?;
        match RouteTable::build(&specs) {
            Ok(routes) => Ok(Loaded {
                instance: Instance::new(raw, routes, data),
                info,
                sha256,
            }),
            Err(error) => {
                // `init` succeeded, so `destroy` must run: dropping `raw` does it.
                let _ = tokio::task::spawn_blocking(move || drop(raw)).await;
                Err(format!("bad routes: {error}"))
            }
        }
    }

    /// The datasources app `name` is granted.
    fn app_data(&self, name: &str) -> Result<AppData, String> {
        let granted = self
            .config
            .app_datasources(name)
            .iter()
            .map(|d| {
                self.datasources
                    .get(d)
                    .cloned()
                    .ok_or_else(|| format!("datasource {d} is not configured"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AppData::new(name.into(), granted))
    }

    /// Applies the module's migrations on the app's default datasource.
    async fn migrate(&self, data: &AppData, specs: &[MigrationSpec]) -> Result<(), String> {
        if specs.is_empty() {
            return Ok(());
        }
        let ds = data
            .default_datasource()
            .ok_or_else(|| format!("app {} has migrations but no datasource", data.name))?;
        let migrations = group_migrations(specs)?;
        apply_app_migrations(ds, &data.name, &migrations)
            .await
            .map(drop)
            .map_err(|e| format!("migrations failed: {e}"))
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

    /// Records a new app in state `loading` and mounts its (empty) slot.
    fn register(&self, name: &str, file: &Path, context_path: &str) -> Result<(), String> {
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
        let now = SystemTime::now();
        self.status.send_modify(|apps| {
            apps.insert(
                name.to_owned(),
                AppStatus {
                    name: name.to_owned(),
                    file: file.to_path_buf(),
                    context_path: context_path.to_owned(),
                    state: AppState::Loading,
                    last_error: None,
                    module: None,
                    sha256: None,
                    loaded_at: None,
                    since: now,
                    reloads: 0,
                    images: 0,
                    image_bytes: 0,
                },
            );
        });
        Ok(())
    }

    fn current(&self, name: &str) -> Result<AppStatus, ManagerError> {
        self.status
            .borrow()
            .get(name)
            .cloned()
            .ok_or_else(|| ManagerError::UnknownApp(name.to_owned()))
    }

    fn lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("locks lock");
        Arc::clone(locks.entry(name.to_owned()).or_default())
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut AppStatus)) {
        self.status.send_modify(|apps| {
            if let Some(app) = apps.get_mut(name) {
                change(app);
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
}

/// Groups the per-variant reports of a module into migrations.
fn group_migrations(specs: &[MigrationSpec]) -> Result<Vec<AppMigration>, String> {
    let mut migrations: Vec<AppMigration> = Vec::new();
    for spec in specs {
        let index = match migrations.iter().position(|m| m.version == spec.version) {
            Some(i) => i,
            None => {
                migrations.push(AppMigration {
                    version: spec.version,
                    description: spec.description.clone(),
                    sql: String::new(),
                    variants: Vec::new(),
                });
                migrations.len() - 1
            }
        };
        let m = &mut migrations[index];
        let twice = if spec.backend.is_empty() {
            !std::mem::replace(&mut m.sql, spec.sql.clone()).is_empty()
        } else {
            let seen = m.variants.iter().any(|(b, _)| *b == spec.backend);
            m.variants.push((spec.backend.clone(), spec.sql.clone()));
            seen
        };
        if twice {
            return Err(format!("the module declares migration {} twice", spec.version));
        }
    }
    Ok(migrations)
}

/// Drains `instance` (bounded by `grace`), cancels its tasks, and calls
/// `destroy` by dropping the last reference on a blocking thread.
async fn retire(name: &str, instance: Arc<Instance>, grace: Duration) {
    let cancelled = instance.drain(grace).await;
    if cancelled > 0 {
        tracing::warn!(
            app = name,
            cancelled,
            "cancelled requests still running after the drain timeout"
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
}
