//! A running app instance: the module's instance, its route table, and the
//! accounting that lets it drain before `destroy`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use super::context::StaticRoot;
use super::routes::{RouteTable, Target};
use crate::abi::{CallError, HostRequest, HostResponse, RawInstance};
use crate::db::{AppData, RequestScope};
use crate::deploy::bundle::BundleDir;
use crate::striped::Stripes;

/// Why a request to an instance produced no response.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The module failed the call.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The instance was stopped while the request was running.
    #[error("request cancelled: the app is stopping")]
    Cancelled,
    /// The task or blocking thread running the handler died (or its own
    /// runtime's task panicked).
    #[error("the handler's task failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
}

/// One initialised app instance.
pub struct Instance {
    routes: RouteTable,
    data: Arc<AppData>,
    /// The shares' tracker: `drain` waits for every share to be dropped,
    /// which the last lease of each does once the slot has let it go.
    requests: TaskTracker,
    /// Leases held now, counted by the stripe of their share.
    leases: Stripes<AtomicUsize>,
    cancel: CancellationToken,
    /// Cancelled when the instance is retired: its WebSockets close with
    /// `farewell_code`, its streamed responses get a grace period.
    farewell: Farewell,
    /// Its bundle's static files, if it came from a bundle with a `static/`.
    static_root: Option<Arc<StaticRoot>>,
    /// Dropped after the fields above, and dropping it calls the module's `destroy`.
    raw: RawInstance,
    /// Last field: the unpacked bundle it runs from, removed (once no
    /// static-file request holds it either) after `destroy`.
    bundle: Option<Arc<BundleDir>>,
}

/// What one stripe of worker threads (see [`Stripes`]) takes an instance
/// through. Every request holds the instance, its database grants and a
/// place among the requests `drain` waits for; were those one reference
/// count and one tracker count per instance, every worker would write the
/// same cache lines for every request, and each write would wait for the
/// line to come over from the core that wrote it last. A request clones
/// its thread's share instead: counts on lines of that thread's.
///
/// The slot keeps one share per stripe while the instance runs; retiring
/// the instance drops them, and the last request of each releases it.
/// Field order matters: the instance is released before the tracker
/// token, so once `drain` sees no tokens, no request holds the instance
/// either. Aligned as a cache line pair, so that no two shares share one.
#[repr(align(128))]
pub struct Share {
    instance: Arc<Instance>,
    /// A copy of the instance's grants, so that each request's database
    /// scope counts its reference here too.
    data: Arc<AppData>,
    /// Its stripe: where its leases are counted in the instance.
    stripe: usize,
    /// A child of the instance's cancellation: a call that waits registers
    /// with this one, so that waiting calls of different stripes do not
    /// take the same lock.
    cancel: CancellationToken,
    _token: TaskTrackerToken,
}

impl Share {
    /// The shares of `instance`, one per stripe.
    pub fn all(instance: &Arc<Instance>) -> Stripes<Arc<Share>> {
        Stripes::new(|stripe| {
            Arc::new(Share {
                instance: Arc::clone(instance),
                data: Arc::new(AppData::clone(&instance.data)),
                stripe,
                cancel: instance.cancel.child_token(),
                _token: instance.requests.token(),
            })
        })
    }

    /// The instance.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// A fresh database scope for one request.
    pub fn new_scope(&self) -> RequestScope {
        RequestScope::new(Arc::clone(&self.data))
    }

    /// Takes the instance for one request; [`Instance::drain`] waits until
    /// the lease is dropped.
    pub fn lease(self: Arc<Self>) -> Lease {
        self.instance.leases.get(self.stripe).fetch_add(1, Ordering::Relaxed);
        Lease { share: self }
    }
}

/// Holds an instance for one request, from the moment it is routed there
/// (before its body is read) until the handler is done: `drain` waits for
/// leases.
pub struct Lease {
    share: Arc<Share>,
}

impl Clone for Lease {
    fn clone(&self) -> Self {
        Arc::clone(&self.share).lease()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let share = &self.share;
        share.instance.leases.get(share.stripe).fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lease {
    /// An empty response for [`Lease::call`].
    pub fn response(&self) -> HostResponse {
        self.share.instance.raw.response()
    }

    /// Calls the async handler of `target` with `request`, its answer
    /// written into `response` (made by [`Lease::response`]): here, or on
    /// the app's own runtime if it has one (then a handler that never
    /// yields holds one of the app's threads, and this future still ends
    /// when dropped, e.g. by the request timeout; the handler is cancelled
    /// once its poll returns).
    ///
    /// A plain function returning one of two futures rather than an
    /// `async fn` awaiting one: no level of its own, which would move the
    /// instance's call future into it on every request.
    ///
    /// # Errors
    /// See [`ServeError`].
    pub fn call<'a>(
        &'a self,
        target: Target,
        request: Arc<HostRequest>,
        response: &'a mut HostResponse,
    ) -> impl Future<Output = Result<(), ServeError>> + Send + 'a {
        let Some(runtime) = self.own_runtime() else {
            return Either::Left(self.share.instance.call(target, request, &self.share.cancel, response));
        };
        // The task holds the instance (its `destroy` waits) and counts as
        // in flight until the handler returns, even if this future is gone.
        // Its answer is its own until it is done.
        let lease = self.clone();
        let task = runtime.spawn(async move {
            let mut answer = lease.response();
            let share = &lease.share;
            share.instance.call(target, request, &share.cancel, &mut answer).await?;
            Ok::<_, ServeError>(answer)
        });
        Either::Right(async move {
            *response = AbortOnDropHandle::new(task).await??;
            Ok(())
        })
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
    ) -> Result<(HostResponse, Lease), ServeError> {
        let held = (self, permit);
        let job = tokio::task::spawn_blocking(move || {
            let (lease, _permit) = held;
            let response = lease.share.instance.raw.call_blocking(target.route, request);
            (response, lease)
        });
        let (response, lease) = job.await?;
        Ok((response?, lease))
    }

    /// The app's own runtime, if it has one.
    pub fn own_runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.share.instance.raw.host_app().own_runtime()
    }

    /// The app's stall record.
    pub fn watch(&self) -> &'static crate::watchdog::AppWatch {
        self.share.instance.raw.host_app().watch()
    }

    /// The instance's farewell to its connections.
    pub fn farewell(&self) -> &Farewell {
        &self.share.instance.farewell
    }
}

/// An instance's farewell to its open connections, when it is retired.
#[derive(Debug, Clone, Default)]
pub struct Farewell {
    token: CancellationToken,
    code: Arc<AtomicU16>,
}

impl Farewell {
    /// Cancelled when the instance is retired.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The WebSocket close code: 1012 for a reload, 1001 for a stop or
    /// shutdown.
    pub fn code(&self) -> u16 {
        self.code.load(Ordering::Acquire)
    }
}

impl Instance {
    /// Wraps an initialised module instance.
    pub fn new(raw: RawInstance, routes: RouteTable, data: Arc<AppData>) -> Self {
        Instance {
            routes,
            data,
            requests: TaskTracker::new(),
            leases: Stripes::default(),
            cancel: CancellationToken::new(),
            farewell: Farewell::default(),
            static_root: None,
            raw,
            bundle: None,
        }
    }

    /// Ties the instance to the bundle directory it was loaded from, and
    /// gives it that bundle's static files.
    pub fn set_bundle(&mut self, dir: Arc<BundleDir>, static_root: Option<Arc<StaticRoot>>) {
        self.bundle = Some(dir);
        self.static_root = static_root;
    }

    /// Its bundle's static files, if any.
    pub fn static_root(&self) -> Option<Arc<StaticRoot>> {
        self.static_root.clone()
    }

    /// Runs the handler until it answers into `response`, or `cancel` (a
    /// child of the instance's cancellation, see [`Share`]) is cancelled by
    /// `drain`.
    async fn call(
        &self,
        target: Target,
        request: Arc<HostRequest>,
        cancel: &CancellationToken,
        response: &mut HostResponse,
    ) -> Result<(), ServeError> {
        tokio::select! {
            biased;
            result = self.raw.call(target.route, request, response) => Ok(result?),
            () = cancel.cancelled() => Err(ServeError::Cancelled),
        }
    }

    /// The host side of the instance.
    pub fn host_app(&self) -> &'static crate::abi::HostApp {
        self.raw.host_app()
    }

    /// Its routes.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Requests running now.
    pub fn in_flight(&self) -> usize {
        // A lease counts down on the stripe it counted up on: no stripe
        // is ever below zero.
        self.leases.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }

    /// Tells the instance's open connections that it is going away:
    /// WebSockets close with `code` (1012 for a reload, 1001 for a stop),
    /// streamed responses are cut after the connection grace.
    pub fn farewell(&self, code: u16) {
        self.farewell.code.store(code, Ordering::Release);
        self.farewell.token.cancel();
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
            cancelled = self.in_flight();
            self.cancel.cancel();
            self.requests.wait().await;
        }
        self.raw.host_app().cancel_tasks().await;
        cancelled
    }
}
