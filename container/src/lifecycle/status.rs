//! What the manager publishes about each app, and how operations end.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::pipeline::PipelineError;
use super::registry::Conflict;
use super::state::{AppState, InvalidTransition};
use crate::abi::ModuleInfo;
use crate::deploy::bundle::Descriptor;

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
    /// The error of the last failed operation (a failed reload leaves the
    /// app running the previous version, with the reason here).
    pub last_error: Option<String>,
    /// What the running module says about itself.
    pub module: Option<ModuleInfo>,
    /// SHA-256 of the running library.
    pub sha256: Option<String>,
    /// When the running instance was loaded.
    #[serde(with = "humantime_serde")]
    pub loaded_at: Option<SystemTime>,
    /// When the state last changed.
    #[serde(with = "humantime_serde")]
    pub since: SystemTime,
    /// Successful reloads so far.
    pub reloads: u64,
    /// Library images of this app loaded so far (never unloaded): the
    /// running one plus one per earlier load.
    pub images: u64,
    /// Bytes of address space those images map.
    pub image_bytes: u64,
    /// What the running version's bundle says, if it came from one.
    pub bundle: Option<BundleStatus>,
}

/// The bundle an app runs from.
#[derive(Debug, Clone, Serialize)]
pub struct BundleStatus {
    /// Its descriptor (`crabcat-app.toml`).
    #[serde(flatten)]
    pub descriptor: Descriptor,
    /// Where it is unpacked; removed once the instance is retired.
    pub dir: PathBuf,
}

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A new app was deployed and is running.
    Deployed,
    /// A new version replaced the running one.
    Reloaded,
    /// The library is the one already running; nothing changed.
    Unchanged,
    /// The app was drained and destroyed; its file stays.
    Stopped,
    /// A stopped or failed app was loaded again and is running.
    Started,
    /// The app was drained, destroyed and removed.
    Undeployed,
}

/// Why an operation did nothing (or failed).
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// No app has that name.
    #[error("no app named {0}")]
    UnknownApp(String),
    /// The name cannot be an app name.
    #[error("invalid app name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// The module was refused (load, check, migrations or init failed);
    /// whatever ran before keeps running.
    #[error(transparent)]
    Refused(Box<PipelineError>),
    /// The operation does not fit the app's state or another app's claim.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The state table does not allow the change (a bug in the container).
    #[error(transparent)]
    Lifecycle(#[from] InvalidTransition),
    /// A file could not be read, written or removed.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<PipelineError> for ManagerError {
    fn from(error: PipelineError) -> Self {
        ManagerError::Refused(Box::new(error))
    }
}

/// `error` and its sources, joined with `: `, for logs, markers and the
/// admin API's messages. A source whose text the message already ends with
/// (errors written as `"{path}: {source}"`) is not repeated.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl AppStatus {
    /// A newly registered app, in state `loading`.
    pub fn new(name: &str, file: &Path, context_path: &str) -> Self {
        AppStatus {
            name: name.to_owned(),
            file: file.to_path_buf(),
            context_path: context_path.to_owned(),
            state: AppState::Loading,
            last_error: None,
            module: None,
            sha256: None,
            loaded_at: None,
            since: SystemTime::now(),
            reloads: 0,
            images: 0,
            image_bytes: 0,
            bundle: None,
        }
    }
}
