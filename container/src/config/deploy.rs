//! `[deploy]`: the deploy directory, its watcher, and how reloads drain.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[deploy]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// The directory modules are loaded from.
    pub dir: PathBuf,
    /// Watch the directory: new files deploy, replaced ones reload, removed
    /// ones undeploy.
    pub watch: bool,
    /// How often the directory is rescanned even without change events.
    #[serde(with = "humantime_serde")]
    pub scan_interval: Duration,
    /// A file is picked up only once its size, modification time and
    /// inode have not changed for this long.
    #[serde(with = "humantime_serde")]
    pub settle_time: Duration,
    /// On reload, stop and undeploy: how long the old instance's in-flight
    /// requests may take before they are cancelled.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// On reload, stop and undeploy: how long the old instance's streamed
    /// responses (SSE, downloads) may go on before they are cut. (Its
    /// WebSockets are closed at once, with code 1012.)
    #[serde(with = "humantime_serde")]
    pub connection_grace: Duration,
    /// The most bytes an app bundle (`.crabcat`) may unpack to, all its
    /// files together, counted as they are inflated (a zip bomb stops here).
    pub max_bundle_bytes: u64,
    /// The most entries (files and directories) an app bundle may hold.
    pub max_bundle_entries: usize,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            dir: "deploy".into(),
            watch: true,
            scan_interval: Duration::from_secs(2),
            settle_time: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(30),
            connection_grace: Duration::from_secs(10),
            max_bundle_bytes: 512 * 1024 * 1024,
            max_bundle_entries: 10_000,
        }
    }
}
