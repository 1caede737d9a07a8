//! The app lifecycle: the state machine, running instances, what is
//! published about each app, the manager that drives them, and the
//! routing tables it keeps: the context-path table (`context`) and each
//! instance's route table (`routes`).

mod context;
mod directory;
mod instance;
mod limits;
mod manager;
mod pipeline;
mod registry;
mod retire;
mod routes;
mod runtimes;
mod state;
mod status;

pub use context::{AppSlot, ContextTable, Resolved, StaticRoot, StaticRootError};
pub use instance::{Farewell, Instance, Lease, ServeError, Share};
pub use limits::{AppLimits, Permit};
pub use manager::AppManager;
pub use pipeline::PipelineError;
pub use registry::Conflict;
pub use routes::{Lookup, RouteError, RouteTable, Target};
pub use state::{AppState, Event, InvalidTransition};
pub use status::{AppStatus, ManagerError, Outcome, chain};
