//! The app lifecycle: the state machine, running instances, what is
//! published about each app, and the manager that drives them.

mod instance;
mod manager;
mod state;
mod status;

pub use instance::{Instance, Lease, ServeError};
pub use manager::AppManager;
pub use state::{AppState, Event, InvalidTransition};
pub use status::{AppStatus, ManagerError, Outcome};
