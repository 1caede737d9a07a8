//! The lifecycle manager: the one place that changes app state. Operations
//! on one app are serialised by a per-app lock; different apps proceed
//! independently. What is known about the apps lives in the
//! [`Registry`]; turning a file into an instance is the [`Pipeline`]'s
//! job; ending an instance is [`retire`]'s.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::context::{AppSlot, ContextTable, StaticRoot};
use super::instance::Instance;
use super::limits::AppLimits;
use super::pipeline::{Loaded, Pipeline, PipelineError};
use super::registry::{Conflict, Registry};
use super::retire::retire;
use super::state::{AppState, Event};
use super::status::{AppStatus, ManagerError, Outcome, chain};
use crate::config::Config;
use crate::db::Datasources;
use crate::deploy::bundle::BundleLimits;
use crate::deploy::{self, Marker, StagedCopy, Staging};
use crate::session::Store as SessionStore;

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

    /// Deploys a new app `name` whose library or bundle is read from
    /// `source` and lives at `file` in the deploy directory (the same path,
    /// except for uploads, which are renamed into place only once they work).
    ///
    /// # Errors
    /// [`ManagerError::Conflict`] if the name or context path is taken,
    /// [`ManagerError::Refused`] if the module failed to load or init.
    pub async fn deploy(&self, name: &str, source: &Path, file: &Path) -> Result<Outcome, ManagerError> {
        let lock = self.registry.lock(name);
        let _guard = lock.lock().await;
        self.deploy_locked(name, source, file).await
    }

    /// Stages `source` first (a bundle's descriptor may say where the app
    /// is mounted), registers the app there, then loads and mounts it, or
    /// records the failure (a refused bundle too: the app is `failed`).
    async fn deploy_locked(&self, name: &str, source: &Path, file: &Path) -> Result<Outcome, ManagerError> {
        let staged = self.pipeline.stage(name, source).await;
        let context_path = self.pipeline.context_path(name, staged.as_ref().ok());
        if let Err(conflict) = self.registry.register(name, file, &context_path, self.limits(name)) {
            tracing::error!(app = name, file = %file.display(), "not deployed: {conflict}");
            return Err(conflict.into());
        }
        self.attach_static_root(name);
        self.load_and_mount(name, staged, file, &context_path, "deployed")
            .await?;
        Ok(Outcome::Deployed)
    }

    /// Loads `staged` for the registered app `name` (state `loading`),
    /// mounted at `context_path`, and mounts it, or records the failure.
    /// `what` names the operation in the log: `deployed` or `started`.
    async fn load_and_mount(
        &self,
        name: &str,
        staged: Result<StagedCopy, PipelineError>,
        file: &Path,
        context_path: &str,
        what: &str,
    ) -> Result<(), ManagerError> {
        let started = Instant::now();
        let loaded = match staged {
            Ok(staged) => self.load_staged(name, staged, file, context_path).await,
            Err(error) => Err(error),
        };
        match loaded {
            Ok(loaded) => {
                self.mount(name, loaded, file)?;
                tracing::info!(
                    app = name,
                    context_path,
                    file = %file.display(),
                    ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
                    "{what}"
                );
                Ok(())
            }
            Err(error) => {
                let reason = chain(&error);
                tracing::error!(app = name, file = %file.display(), "deployment failed: {reason}");
                let last_error = reason.clone();
                self.registry
                    .transition(name, Event::Failed(reason.clone()), |s| s.last_error = Some(last_error))?;
                deploy::write_marker(file, Some((Marker::Failed, &reason)));
                Err(error.into())
            }
        }
    }

    /// Runs the pipeline on a staged copy, counting the image it loads: in
    /// state `loading` that is the `loaded` event; on a reload, a plain
    /// update.
    async fn load_staged(
        &self,
        name: &str,
        staged: StagedCopy,
        file: &Path,
        context_path: &str,
    ) -> Result<Loaded, PipelineError> {
        self.pipeline
            .load_staged(name, staged, file, context_path, |bytes| {
                let count = |s: &mut AppStatus| {
                    s.images += 1;
                    s.image_bytes += bytes;
                };
                match self.registry.current(name).map(|s| s.state) {
                    Ok(AppState::Loading) => {
                        let _ = self.registry.transition(name, Event::Loaded, count);
                    }
                    _ => self.registry.update(name, count),
                }
            })
            .await
    }

    /// Puts a loaded instance in the app's slot (new requests reach it at
    /// once) and publishes it in one update: a first start, or a reload.
    fn mount(&self, name: &str, loaded: Loaded, file: &Path) -> Result<Option<Arc<Instance>>, ManagerError> {
        let Loaded {
            instance,
            info,
            sha256,
            bundle,
        } = loaded;
        let text = format!("{} {} sha256:{sha256}\n", info.crate_name, info.version);
        let Some(slot) = self.registry.slot(name) else {
            return Err(ManagerError::UnknownApp(name.to_owned()));
        };
        let previous = slot.swap(Some(Arc::new(instance)));
        let reloaded = previous.is_some();
        let change = |s: &mut AppStatus| {
            s.module = Some(info);
            s.sha256 = Some(sha256);
            s.loaded_at = Some(SystemTime::now());
            s.last_error = None;
            s.reloads += u64::from(reloaded);
            s.bundle = bundle;
        };
        if reloaded {
            self.registry.update(name, change);
        } else {
            self.registry.transition(name, Event::Started, change)?;
        }
        deploy::write_marker(file, Some((Marker::Deployed, &text)));
        Ok(previous)
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
        let lock = self.registry.lock(name);
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
        let lock = self.registry.lock(name);
        let _guard = lock.lock().await;
        let is_bundle = deploy::bundle::is_bundle(upload).map_err(|source| ManagerError::Io {
            path: upload.to_path_buf(),
            source,
        })?;
        let known = self.registry.current(name).ok().map(|s| s.file);
        let (target, result) = match known {
            Some(file) if deploy::is_bundle_name(&file) != is_bundle => {
                return Err(kind_conflict(name, &file, is_bundle));
            }
            Some(file) => (file, self.reload_locked(name, Some(upload), false).await),
            None => {
                let file_name = match is_bundle {
                    true => deploy::bundle_file_name(name),
                    false => deploy::file_name(name),
                };
                let target = self.deploy_dir().join(file_name);
                let result = self.deploy_locked(name, upload, &target).await;
                if let Err(error) = &result
                    && !matches!(error, ManagerError::Conflict(_))
                {
                    // Nothing was deployed: forget the attempt entirely.
                    let _ = self.undeploy_locked(name, false).await;
                }
                (target, result)
            }
        };
        if let Ok(Outcome::Deployed | Outcome::Reloaded | Outcome::Started) = result {
            std::fs::rename(upload, &target).map_err(|source| ManagerError::Io {
                path: target.clone(),
                source,
            })?;
        }
        result
    }

    async fn reload_locked(&self, name: &str, source: Option<&Path>, force: bool) -> Result<Outcome, ManagerError> {
        let current = self.registry.current(name)?;
        let source = source.unwrap_or(&current.file);
        if !matches!(current.state, AppState::Running) {
            return self.start_locked(name, source, &current).await;
        }
        let started = Instant::now();
        // Staged first: its hash tells whether anything changed, and the
        // file is read once either way.
        let loaded = match self.pipeline.stage(name, source).await {
            Ok(staged) if !force && current.sha256.as_deref() == Some(staged.sha256()) => {
                return Ok(Outcome::Unchanged); // dropping `staged` removes the copy
            }
            Ok(staged) => {
                self.load_staged(name, staged, &current.file, &current.context_path)
                    .await
            }
            Err(error) => Err(error),
        };
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                let reason = chain(&error);
                tracing::error!(app = name, file = %current.file.display(), "reload failed, the previous version keeps serving: {reason}");
                let text = format!("reload failed (the previous version keeps serving): {reason}");
                self.registry.update(name, |s| s.last_error = Some(reason));
                deploy::write_marker(&current.file, Some((Marker::Failed, &text)));
                return Err(error.into());
            }
        };
        let old = self.mount(name, loaded, &current.file)?;
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
        let lock = self.registry.lock(name);
        let _guard = lock.lock().await;
        let current = self.registry.current(name)?;
        let instance = self.registry.slot(name).and_then(|slot| slot.swap(None));
        let Some(instance) = instance else {
            return Err(not_in_state(name, current.state));
        };
        self.stop_instance(name, instance, self.config.deploy.drain_timeout)
            .await?;
        deploy::write_marker(&current.file, Some((Marker::Stopped, "stopped by an operator\n")));
        Ok(Outcome::Stopped)
    }

    /// Starts a stopped or failed app from its file.
    ///
    /// # Errors
    /// [`ManagerError::UnknownApp`], [`ManagerError::Conflict`] if it is
    /// running, [`ManagerError::Refused`] if it failed to load or init.
    pub async fn start(&self, name: &str) -> Result<Outcome, ManagerError> {
        let lock = self.registry.lock(name);
        let _guard = lock.lock().await;
        let current = self.registry.current(name)?;
        self.start_locked(name, &current.file, &current).await
    }

    async fn start_locked(&self, name: &str, source: &Path, current: &AppStatus) -> Result<Outcome, ManagerError> {
        if !matches!(current.state, AppState::Stopped | AppState::Failed(_)) {
            return Err(not_in_state(name, current.state.clone()));
        }
        self.registry.transition(name, Event::Load, |_| {})?;
        let staged = self.pipeline.stage(name, source).await;
        self.load_and_mount(name, staged, &current.file, &current.context_path, "started")
            .await?;
        Ok(Outcome::Started)
    }

    /// Undeploys app `name`: stops it if running, forgets it, removes its
    /// markers and, with `remove_file`, its library.
    ///
    /// # Errors
    /// [`ManagerError::UnknownApp`], or [`ManagerError::Io`] if the file
    /// cannot be removed (the app is undeployed all the same).
    pub async fn undeploy(&self, name: &str, remove_file: bool) -> Result<Outcome, ManagerError> {
        let lock = self.registry.lock(name);
        let _guard = lock.lock().await;
        self.undeploy_locked(name, remove_file).await
    }

    async fn undeploy_locked(&self, name: &str, remove_file: bool) -> Result<Outcome, ManagerError> {
        let current = self.registry.current(name)?;
        if let Some(instance) = self.registry.slot(name).and_then(|slot| slot.swap(None)) {
            self.stop_instance(name, instance, self.config.deploy.drain_timeout)
                .await?;
        }
        self.registry.remove(name);
        deploy::write_marker(&current.file, None);
        tracing::info!(app = name, "undeployed");
        if remove_file && let Err(source) = std::fs::remove_file(&current.file) {
            return Err(ManagerError::Io {
                path: current.file,
                source,
            });
        }
        Ok(Outcome::Undeployed)
    }

    /// Stops every app: out of routing, drained (all apps share one
    /// deadline, `grace` from now), destroyed; then waits for instances
    /// retired by reloads.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for slot in self.registry.slots() {
            let lock = self.registry.lock(&slot.name);
            let _guard = lock.lock().await;
            let Some(instance) = slot.swap(None) else { continue };
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = self.stop_instance(&slot.name, instance, left).await;
        }
        self.retiring.close();
        self.retiring.wait().await;
    }

    async fn stop_instance(&self, name: &str, instance: Arc<Instance>, grace: Duration) -> Result<(), ManagerError> {
        self.registry.transition(name, Event::Drain, |_| {})?;
        // Stop, undeploy, shutdown: the app is going away.
        retire(name, instance, grace, 1001).await;
        self.registry.transition(name, Event::Drained, |_| {})?;
        Ok(())
    }

    /// Gives the registered app `name` its `static_dir`, when configured.
    /// A directory that cannot be served is logged, and the app deploys
    /// without static files.
    fn attach_static_root(&self, name: &str) {
        let config = self.config.app(name);
        let (Some(dir), Some(slot)) = (&config.static_dir, self.registry.slot(name)) else {
            return;
        };
        match StaticRoot::open(dir, &config.static_cache_control) {
            Ok(root) => {
                tracing::info!(app = name, dir = %root.dir.display(), "serving static files");
                slot.set_static_root(Some(Arc::new(root)));
            }
            Err(error) => tracing::error!(app = name, "no static files: {error}"),
        }
    }

    fn limits(&self, name: &str) -> AppLimits {
        AppLimits::new(&self.config.app(name))
    }

    fn retire_in_background(&self, name: &str, old: Arc<Instance>) {
        let name = name.to_owned();
        let grace = self.config.deploy.drain_timeout;
        // A reload: a client should reconnect, and reach the new instance.
        self.retiring
            .spawn(async move { retire(&name, old, grace, 1012).await });
    }
}

fn kind_conflict(name: &str, file: &Path, upload_is_bundle: bool) -> ManagerError {
    let (kind, upload) = match upload_is_bundle {
        true => ("library", "bundle"),
        false => ("bundle", "library"),
    };
    Conflict::Kind {
        name: name.to_owned(),
        file: file.display().to_string(),
        kind,
        upload,
    }
    .into()
}

fn not_in_state(name: &str, state: AppState) -> ManagerError {
    Conflict::State {
        name: name.to_owned(),
        state,
    }
    .into()
}
