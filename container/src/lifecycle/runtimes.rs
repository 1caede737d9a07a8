//! The runtimes of apps that run on threads of their own
//! (`apps.NAME.worker_threads`): one per app name, kept for the life of
//! the process, so that a reload reuses it and connections a shared pool
//! opened on it (a database driver registers its sockets with the runtime
//! that opened them) never lose their driver.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tokio::runtime::{Handle, Runtime};

/// The runtime of app `name`, with `threads` worker threads named after
/// the app; made on first use.
///
/// # Errors
/// The threads could not be started.
pub fn own_runtime(name: &str, threads: usize) -> std::io::Result<Handle> {
    static RUNTIMES: OnceLock<Mutex<HashMap<String, Runtime>>> = OnceLock::new();
    let mut runtimes = RUNTIMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(runtime) = runtimes.get(name) {
        return Ok(runtime.handle().clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(format!("app-{name}"))
        .enable_all()
        .build()?;
    tracing::info!(app = name, threads, "the app runs on worker threads of its own");
    let handle = runtime.handle().clone();
    runtimes.insert(name.to_owned(), runtime);
    Ok(handle)
}
