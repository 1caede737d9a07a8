//! A running app instance: the module's instance, its route table, and the
//! accounting that lets it drain before `destroy`.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::routes::{RouteTable, Target};
use crate::abi::{CallError, HostRequest, HostResponse, RawInstance};
use crate::db::{AppData, RequestScope};

/// Why a request to an instance produced no response.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The module failed the call.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The instance was stopped while the request was running.
    #[error("request cancelled: the app is stopping")]
    Cancelled,
    /// The blocking thread running the handler died.
    #[error("blocking handler task failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
}

/// One initialised app instance.
pub struct Instance {
    routes: RouteTable,
    data: Arc<AppData>,
    requests: TaskTracker,
    cancel: CancellationToken,
    /// Last field: dropped last, and dropping it calls the module's `destroy`.
    raw: RawInstance,
}

/// Holds an instance for one request, from the moment it is routed there
/// (before its body is read) until the handler is done: `drain` waits for
/// leases. Field order matters: the instance is released before the
/// tracker token, so once `drain` sees no tokens, no request holds the
/// instance either.
pub struct Lease {
    instance: Arc<Instance>,
    _token: TaskTrackerToken,
}

impl Lease {
    /// Calls the handler of `target` with `request`: async routes are
    /// polled here, blocking ones run on the blocking thread pool.
    ///
    /// # Errors
    /// See [`ServeError`].
    pub async fn call(self, target: Target, request: Arc<HostRequest>) -> Result<HostResponse, ServeError> {
        if target.blocking {
            return self.call_blocking(target, request, None).await;
        }
        let instance = &self.instance;
        tokio::select! {
            biased;
            result = instance.raw.call(target.route, request) => Ok(result?),
            () = instance.cancel.cancelled() => Err(ServeError::Cancelled),
        }
    }
}

impl Lease {
    /// Runs a blocking route on the blocking thread pool. The lease (and
    /// `permit`, the app's blocking-call quota) go with the thread: a call
    /// whose request timed out still counts as in flight, and still keeps
    /// its instance from being destroyed, until its thread returns.
    ///
    /// # Errors
    /// See [`ServeError`].
    pub async fn call_blocking(
        self,
        target: Target,
        request: Arc<HostRequest>,
        permit: Option<super::Permit>,
    ) -> Result<HostResponse, ServeError> {
        let held = (self, permit);
        let job = tokio::task::spawn_blocking(move || {
            let (lease, _permit) = held;
            lease.instance.raw.call_blocking(target.route, request)
        });
        Ok(job.await??)
    }
}

impl Instance {
    /// Wraps an initialised module instance.
    pub fn new(raw: RawInstance, routes: RouteTable, data: Arc<AppData>) -> Self {
        Instance {
            routes,
            data,
            requests: TaskTracker::new(),
            cancel: CancellationToken::new(),
            raw,
        }
    }

    /// Its routes.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// A fresh database scope for one request.
    pub fn new_scope(&self) -> RequestScope {
        RequestScope::new(Arc::clone(&self.data))
    }

    /// Requests running now.
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// Takes this instance for one request; [`drain`](Self::drain) waits
    /// until the lease is dropped.
    pub fn lease(self: Arc<Self>) -> Lease {
        let token = self.requests.token();
        Lease {
            instance: self,
            _token: token,
        }
    }

    /// Waits up to `timeout` for in-flight requests, then cancels the async
    /// ones still running (blocking ones cannot be interrupted and are
    /// waited for), then cancels the tasks the module spawned. After this
    /// the instance may be destroyed. Returns how many requests were
    /// cancelled.
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.requests.close();
        let mut cancelled = 0;
        if tokio::time::timeout(timeout, self.requests.wait()).await.is_err() {
            cancelled = self.requests.len();
            self.cancel.cancel();
            self.requests.wait().await;
        }
        self.raw.host_app().cancel_tasks().await;
        cancelled
    }
}
