//! What the manager does with the deploy directory: deploy everything in
//! it at start, then act on the watcher's settled changes.

use super::manager::AppManager;
use super::registry::Conflict;
use super::state::AppState;
use super::status::{ManagerError, Outcome, chain};
use crate::deploy::{self, Change, Deployable};

impl AppManager {
    /// Deploys every library in the deploy directory, one after the other.
    /// Failures are logged and recorded; they never stop the others.
    pub async fn deploy_all(&self) {
        let dir = self.deploy_dir();
        let found = match deploy::scan(dir) {
            Ok(found) => found,
            Err(error) => {
                tracing::error!(
                    error = chain(&error),
                    "cannot read the deploy directory; no apps deployed"
                );
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
            Err(error) => tracing::debug!(?change, error = chain(&error), "deploy directory change refused"),
        }
    }

    async fn redeploy_file(&self, d: &Deployable) -> Result<Outcome, ManagerError> {
        let Ok(current) = self.registry.current(&d.name) else {
            return self.deploy(&d.name, &d.file, &d.file).await;
        };
        if current.file != d.file {
            let conflict = Conflict::Name {
                name: d.name.clone(),
                file: current.file.display().to_string(),
            };
            tracing::error!(app = %d.name, file = %d.file.display(), "not deployed: {conflict}");
            return Err(conflict.into());
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
        let matches = self.registry.current(&d.name).is_ok_and(|s| s.file == d.file);
        if !matches {
            return Err(ManagerError::UnknownApp(d.name.clone()));
        }
        self.undeploy(&d.name, false).await
    }
}
