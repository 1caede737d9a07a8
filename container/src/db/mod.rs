//! Data access: named datasources (sqlx pools the container owns), the
//! execution of module queries, the per-request scope that owns
//! transactions, and migrations (the container's own schema and each app's).
//!
//! Modules never see a URL or a connection: they send SQL with `$N`
//! placeholders and values through the host vtable (rewritten to `?` for
//! MySQL/MariaDB by `placeholders`). This module knows no
//! ABI: it takes typed values and hands rows to a [`RowSink`], value by
//! value; `abi::host` translates to and from the wire format.

mod error;
mod exec;
mod migrate;
mod placeholders;
mod pool;
mod scope;

pub use error::classify;
pub use exec::{Done, Failure, Op, RowSink};
pub(crate) use migrate::for_backend;
pub use migrate::{AppMigration, MigrationError, apply_app_migrations};
pub(crate) use pool::on_pool;
pub use pool::{Backend, Datasource, Datasources, Pool, SetupError};
pub use scope::{AppData, RequestScope};
