//! Data access: named datasources (sqlx pools the container owns), the
//! execution of module queries, the per-request scope that owns
//! transactions, and migrations (the container's own schema and each app's).
//!
//! Modules never see a URL or a connection: they send SQL with `$N`
//! placeholders and [`wire`](crabcat_sdk::abi::wire) values through the host
//! vtable, and get rows back in the same encoding.

mod error;
mod exec;
mod migrate;
mod pool;
mod scope;

pub use error::classify;
pub use migrate::{AppMigration, MigrationError, apply_app_migrations};
pub use pool::{Backend, Datasource, Datasources, SetupError};
pub use scope::{AppData, RequestScope};
