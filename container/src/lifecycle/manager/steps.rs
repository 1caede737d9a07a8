//! The steps the operations share: load and mount an instance, record a
//! failure, stop an instance, attach an app's static directory.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::super::context::StaticRoot;
use super::super::instance::Instance;
use super::super::limits::AppLimits;
use super::super::pipeline::{Loaded, PipelineError};
use super::super::retire::retire;
use super::super::state::{AppState, Event};
use super::super::status::{AppStatus, ManagerError, chain};
use super::AppManager;
use crate::deploy::{self, Marker, StagedCopy};

impl AppManager {
    /// Loads `staged` for the registered app `name` (state `loading`),
    /// mounted at `context_path`, and mounts it, or records the failure.
    /// `what` names the operation in the log: `deployed` or `started`.
    pub(super) async fn load_and_mount(
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
    pub(super) async fn load_staged(
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
    pub(super) fn mount(&self, name: &str, loaded: Loaded, file: &Path) -> Result<Option<Arc<Instance>>, ManagerError> {
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

    pub(super) async fn stop_instance(
        &self,
        name: &str,
        instance: Arc<Instance>,
        grace: Duration,
    ) -> Result<(), ManagerError> {
        self.registry.transition(name, Event::Drain, |_| {})?;
        // Stop, undeploy, shutdown: the app is going away.
        retire(name, instance, grace, 1001).await;
        self.registry.transition(name, Event::Drained, |_| {})?;
        Ok(())
    }

    /// Gives the registered app `name` its `static_dir`, when configured.
    /// A directory that cannot be served is logged, and the app deploys
    /// without static files.
    pub(super) fn attach_static_root(&self, name: &str) {
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

    pub(super) fn limits(&self, name: &str) -> AppLimits {
        AppLimits::new(&self.config.app(name))
    }

    pub(super) fn retire_in_background(&self, name: &str, old: Arc<Instance>) {
        let name = name.to_owned();
        let grace = self.config.deploy.drain_timeout;
        // A reload: a client should reconnect, and reach the new instance.
        self.retiring
            .spawn(async move { retire(&name, old, grace, 1012).await });
    }
}
