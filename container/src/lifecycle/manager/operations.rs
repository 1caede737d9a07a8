//! The manager's public operations, each under the app's lock.

use std::path::Path;
use std::time::{Duration, Instant};

use super::super::registry::Conflict;
use super::super::state::{AppState, Event};
use super::super::status::{AppStatus, ManagerError, Outcome, chain};
use super::AppManager;
use crate::deploy::{self, Marker};

impl AppManager {
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
