//! The registry of deployed apps: their published status, their routing
//! slots with the context-path table built from them, and the per-app
//! locks that serialise operations on one app. State changes go through
//! [`Registry::transition`], which checks them against the state table and
//! publishes the new state together with whatever else changed: one status
//! update per change.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::context::{AppSlot, ContextTable};
use super::limits::AppLimits;
use super::state::{AppState, Event, InvalidTransition};
use super::status::{AppStatus, ManagerError};

/// Why an app could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// Another app has the name.
    #[error("an app named {name} is already deployed from {file}")]
    Name { name: String, file: String },
    /// Another app is mounted at the context path.
    #[error("context path {context_path} is already used by app {other}")]
    ContextPath { context_path: String, other: String },
    /// An upload would change what the app's file is: a library for a
    /// bundle, or the other way round.
    #[error("app {name} is deployed from {file}, a {kind}; undeploy it before deploying it as a {upload}")]
    Kind {
        name: String,
        file: String,
        kind: &'static str,
        upload: &'static str,
    },
    /// The operation does not fit the app's state.
    #[error("{name} is {state}")]
    State { name: String, state: AppState },
}

/// Every app the container knows, and where it is routed.
pub struct Registry {
    status: watch::Sender<BTreeMap<String, AppStatus>>,
    slots: Mutex<BTreeMap<String, Arc<AppSlot>>>,
    table: Arc<ArcSwap<ContextTable>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    publishes: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            status: watch::channel(BTreeMap::new()).0,
            slots: Mutex::new(BTreeMap::new()),
            table: Arc::new(ArcSwap::from_pointee(ContextTable::default())),
            locks: Mutex::new(HashMap::new()),
            publishes: AtomicU64::new(0),
        }
    }
}

impl Registry {
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

    /// Status updates published so far (each is one message to subscribers).
    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Relaxed)
    }

    /// The routing slot of app `name`.
    pub fn slot(&self, name: &str) -> Option<Arc<AppSlot>> {
        self.slots.lock().expect("slots lock").get(name).cloned()
    }

    /// Every routing slot.
    pub fn slots(&self) -> Vec<Arc<AppSlot>> {
        self.slots.lock().expect("slots lock").values().cloned().collect()
    }

    /// The status of app `name`.
    ///
    /// # Errors
    /// [`ManagerError::UnknownApp`].
    pub fn current(&self, name: &str) -> Result<AppStatus, ManagerError> {
        self.status
            .borrow()
            .get(name)
            .cloned()
            .ok_or_else(|| ManagerError::UnknownApp(name.to_owned()))
    }

    /// The lock that serialises operations on app `name`.
    pub fn lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("locks lock");
        Arc::clone(locks.entry(name.to_owned()).or_default())
    }

    /// Records a new app in state `loading` and mounts its (empty) slot.
    ///
    /// # Errors
    /// A [`Conflict`] if the name or the context path is taken.
    pub fn register(&self, name: &str, file: &Path, context_path: &str, limits: AppLimits) -> Result<(), Conflict> {
        let prefix: Arc<str> = if context_path == "/" {
            "".into()
        } else {
            context_path.into()
        };
        {
            let mut slots = self.slots.lock().expect("slots lock");
            if slots.contains_key(name) {
                let other = self.status.borrow().get(name).map(|s| s.file.display().to_string());
                return Err(Conflict::Name {
                    name: name.to_owned(),
                    file: other.unwrap_or_default(),
                });
            }
            if let Some(other) = slots.values().find(|s| s.prefix == prefix) {
                return Err(Conflict::ContextPath {
                    context_path: context_path.to_owned(),
                    other: other.name.to_string(),
                });
            }
            slots.insert(name.to_owned(), Arc::new(AppSlot::new(name.into(), prefix, limits)));
            self.table.store(Arc::new(ContextTable::new(slots.values().cloned())));
        }
        let status = AppStatus::new(name, file, context_path);
        self.publish(|apps| {
            apps.insert(name.to_owned(), status);
        });
        Ok(())
    }

    /// Forgets app `name`: its slot, its status and its lock.
    pub fn remove(&self, name: &str) {
        {
            let mut slots = self.slots.lock().expect("slots lock");
            slots.remove(name);
            self.table.store(Arc::new(ContextTable::new(slots.values().cloned())));
        }
        self.publish(|apps| {
            apps.remove(name);
        });
        self.locks.lock().expect("locks lock").remove(name);
    }

    /// Changes app `name`'s status (no state change).
    pub fn update(&self, name: &str, change: impl FnOnce(&mut AppStatus)) {
        self.publish(|apps| {
            if let Some(app) = apps.get_mut(name) {
                change(app);
            }
        });
    }

    /// Applies `event` to app `name` (the only place states change) and,
    /// in the same update, `change`.
    ///
    /// # Errors
    /// [`InvalidTransition`] if the state table does not allow `event` now;
    /// nothing changes then. An unknown app is not an error: it is gone.
    pub fn transition(
        &self,
        name: &str,
        event: Event,
        change: impl FnOnce(&mut AppStatus),
    ) -> Result<(), InvalidTransition> {
        let mut result = Ok(());
        self.publish(|apps| {
            let Some(app) = apps.get_mut(name) else { return };
            match app.state.next(event) {
                Ok(next) => {
                    tracing::debug!(app = name, from = app.state.name(), to = next.name(), "state changed");
                    app.state = next;
                    app.since = SystemTime::now();
                    change(app);
                }
                Err(error) => {
                    tracing::error!(app = name, %error, "lifecycle bug");
                    result = Err(error);
                }
            }
        });
        result
    }

    fn publish(&self, change: impl FnOnce(&mut BTreeMap<String, AppStatus>)) {
        self.publishes.fetch_add(1, Ordering::Relaxed);
        self.status.send_modify(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> AppLimits {
        AppLimits::new(&crate::config::AppConfig::default())
    }

    fn registry_with(name: &str) -> Registry {
        let registry = Registry::default();
        registry
            .register(name, Path::new("deploy/a.so"), "/a", limits())
            .unwrap();
        registry
    }

    #[test]
    fn names_and_context_paths_are_taken_once() {
        let registry = registry_with("a");
        let again = registry.register("a", Path::new("deploy/a2.so"), "/other", limits());
        assert!(matches!(again, Err(Conflict::Name { .. })), "{again:?}");
        let same_path = registry.register("b", Path::new("deploy/b.so"), "/a", limits());
        assert_eq!(
            same_path.unwrap_err().to_string(),
            "context path /a is already used by app a"
        );
        registry.remove("a");
        assert!(registry.register("b", Path::new("deploy/b.so"), "/a", limits()).is_ok());
    }

    #[test]
    fn an_invalid_transition_is_an_error_and_changes_nothing() {
        let registry = registry_with("a");
        let error = registry
            .transition("a", Event::Drained, |s| s.reloads = 99)
            .unwrap_err();
        assert_eq!(error.from, AppState::Loading);
        let status = registry.current("a").unwrap();
        assert_eq!(status.state, AppState::Loading);
        assert_eq!(status.reloads, 0, "the change did not apply either");
    }

    #[test]
    fn a_state_change_and_its_data_are_one_update() {
        let registry = registry_with("a");
        let mut receiver = registry.subscribe();
        receiver.mark_unchanged();
        let before = registry.publishes();
        registry.transition("a", Event::Loaded, |s| s.images = 1).unwrap();
        assert_eq!(registry.publishes() - before, 1);
        let seen = receiver.borrow_and_update().get("a").cloned().unwrap();
        assert_eq!((seen.state, seen.images), (AppState::Initializing, 1));
    }
}
