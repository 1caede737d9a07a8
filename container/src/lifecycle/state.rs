//! The app lifecycle as one state enum with one transition function.
//!
//! ```text
//! loading ──▶ initializing ──▶ running ──▶ draining ──▶ stopped
//!    │             │                                      │
//!    └──▶ failed ◀─┘         failed/stopped ──▶ loading ◀─┘ (redeploy)
//! ```

use std::fmt;

use serde::Serialize;

/// Where an app is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "error", rename_all = "lowercase")]
pub enum AppState {
    /// Its library is being copied, opened and checked.
    Loading,
    /// Its `init` is running.
    Initializing,
    /// Serving requests.
    Running,
    /// Taken out of routing; in-flight requests are finishing.
    Draining,
    /// Destroyed; the file stays deployed.
    Stopped,
    /// Loading or `init` failed, with the reason.
    Failed(String),
}

/// What happened to an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Its library passed every check.
    Loaded,
    /// `init` succeeded and its routes are installed.
    Started,
    /// Loading or `init` failed.
    Failed(String),
    /// It was taken out of routing to stop.
    Drain,
    /// Its last request finished and `destroy` ran.
    Drained,
    /// A new load begins (redeploy of a stopped or failed app).
    Load,
}

/// A transition the table does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid lifecycle transition: {event:?} in state {from}")]
pub struct InvalidTransition {
    pub from: AppState,
    pub event: Event,
}

impl AppState {
    /// The state after `event`, or an error if `event` cannot happen now.
    ///
    /// # Errors
    /// [`InvalidTransition`] for a pair the table does not have.
    pub fn next(&self, event: Event) -> Result<AppState, InvalidTransition> {
        use AppState as S;
        use Event as E;
        match (self, event) {
            (S::Loading, E::Loaded) => Ok(S::Initializing),
            (S::Initializing, E::Started) => Ok(S::Running),
            (S::Loading | S::Initializing, E::Failed(reason)) => Ok(S::Failed(reason)),
            (S::Running, E::Drain) => Ok(S::Draining),
            (S::Draining, E::Drained) => Ok(S::Stopped),
            (S::Stopped | S::Failed(_), E::Load) => Ok(S::Loading),
            (from, event) => Err(InvalidTransition {
                from: from.clone(),
                event,
            }),
        }
    }

    /// The lowercase name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            AppState::Loading => "loading",
            AppState::Initializing => "initializing",
            AppState::Running => "running",
            AppState::Draining => "draining",
            AppState::Stopped => "stopped",
            AppState::Failed(_) => "failed",
        }
    }
}

impl fmt::Display for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppState::Failed(reason) => write!(f, "failed: {reason}"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_states() -> Vec<AppState> {
        use AppState::*;
        vec![Loading, Initializing, Running, Draining, Stopped, Failed("x".into())]
    }

    fn all_events() -> Vec<Event> {
        use Event::*;
        vec![Loaded, Started, Failed("y".into()), Drain, Drained, Load]
    }

    #[test]
    fn transition_table() {
        use AppState as S;
        let allowed: &[(&str, &str, S)] = &[
            ("loading", "Loaded", S::Initializing),
            ("loading", "Failed", S::Failed("y".into())),
            ("initializing", "Started", S::Running),
            ("initializing", "Failed", S::Failed("y".into())),
            ("running", "Drain", S::Draining),
            ("draining", "Drained", S::Stopped),
            ("stopped", "Load", S::Loading),
            ("failed", "Load", S::Loading),
        ];
        for state in all_states() {
            for event in all_events() {
                let event_name = format!("{event:?}");
                let event_name = event_name.split('(').next().unwrap().to_owned();
                let expected = allowed
                    .iter()
                    .find(|(s, e, _)| *s == state.name() && *e == event_name)
                    .map(|(_, _, to)| to.clone());
                match (state.next(event.clone()), expected) {
                    (Ok(got), Some(want)) => assert_eq!(got, want, "{state} + {event_name}"),
                    (Err(e), None) => assert_eq!(e.from, state),
                    (got, want) => panic!("{state} + {event_name}: got {got:?}, want {want:?}"),
                }
            }
        }
    }
}
