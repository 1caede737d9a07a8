//! The app lifecycle: the state machine, running instances, and the
//! manager that deploys, tracks and stops apps.

mod instance;
mod manager;
mod state;

pub use instance::{Instance, ServeError};
pub use manager::{AppManager, AppStatus};
pub use state::{AppState, Event, InvalidTransition};
