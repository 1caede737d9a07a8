//! The end of an instance: drained (bounded by a grace period), its
//! spawned tasks cancelled, then `destroy`, exactly once, by dropping the
//! last reference on a blocking thread.

use std::sync::Arc;
use std::time::Duration;

use super::instance::Instance;

/// Says farewell to `instance`'s connections (WebSockets close with
/// `code`), drains it (bounded by `grace`), cancels its tasks, and calls
/// `destroy` by dropping the last reference on a blocking thread.
pub async fn retire(name: &str, instance: Arc<Instance>, grace: Duration, code: u16) {
    instance.farewell(code);
    let cancelled = instance.drain(grace).await;
    if cancelled > 0 {
        tracing::warn!(
            app = name,
            cancelled,
            "cancelled requests still running after the drain timeout"
        );
    }
    let destroyed = tokio::task::spawn_blocking(move || match Arc::try_unwrap(instance) {
        Ok(instance) => {
            drop(instance); // calls the module's destroy
            true
        }
        Err(_) => false,
    })
    .await
    .unwrap_or(false);
    if destroyed {
        tracing::info!(app = name, "destroyed");
    } else {
        tracing::warn!(
            app = name,
            "still referenced after draining; destroy runs when the last request ends"
        );
    }
}
