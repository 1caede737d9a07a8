//! What a module's instance uses of the host's runtime: the log, the
//! timer, and tasks spawned on the host (tracked per instance, cancelled
//! before `destroy`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crabcat_sdk::abi::{self, FfiFuture, LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_TRACE, LOG_WARN, RawSlice};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{null_argument, text};
use crate::session::AppSessions;
use crate::watchdog::AppWatch;

/// The host's side of one app instance: what `log` and `spawn` need.
/// Leaked on creation ([`HostApp::leak`]) so that it outlives the module
/// image, which is never unloaded either.
pub struct HostApp {
    name: Arc<str>,
    /// Where the app is mounted: `/NAME`, or empty for the root app. Here
    /// rather than in each request: a request would clone an `Arc` that
    /// every worker counts, for every request.
    context_path: Box<str>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    runtime: tokio::runtime::Handle,
    /// `runtime` is the app's own (`apps.NAME.worker_threads`): its calls
    /// and streams run there rather than on the thread that serves the
    /// connection.
    own_runtime: bool,
    limits: InstanceLimits,
    /// Spawns are being refused (logged once per run of refusals).
    refusing: AtomicBool,
    /// The app's stall record: every poll of its code is marked with it.
    watch: &'static AppWatch,
    /// The app's HTTP sessions (none when sessions are off).
    sessions: Option<Arc<AppSessions>>,
}

/// What one instance may use of the host: tasks alive at once, bytes of a
/// response body.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    /// Tasks spawned through the host and alive at once.
    pub max_tasks: usize,
    /// Largest response body.
    pub max_response_bytes: usize,
}

impl HostApp {
    /// Creates the host side of an instance of app `name`, for the life of
    /// the process, mounted at `context_path` (`/` for the root). Tasks the
    /// module spawns run on `runtime`; if it is the app's `own_runtime`, its
    /// handlers and streams run there too.
    pub fn leak(
        name: Arc<str>,
        context_path: &str,
        runtime: tokio::runtime::Handle,
        own_runtime: bool,
        limits: InstanceLimits,
        sessions: Option<Arc<AppSessions>>,
    ) -> &'static HostApp {
        Box::leak(Box::new(HostApp {
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            runtime,
            own_runtime,
            limits,
            refusing: AtomicBool::new(false),
            watch: AppWatch::of(&name),
            sessions,
            name,
            context_path: if context_path == "/" { "" } else { context_path }.into(),
        }))
    }

    /// The app's sessions, unless they are off.
    pub fn sessions(&self) -> Option<&Arc<AppSessions>> {
        self.sessions.as_ref()
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the app is mounted: `/NAME`, or empty for the root app.
    pub fn context_path(&self) -> &str {
        &self.context_path
    }

    /// The app's own runtime, if it has one (`apps.NAME.worker_threads`).
    pub fn own_runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.own_runtime.then_some(&self.runtime)
    }

    /// The app's stall record.
    pub fn watch(&self) -> &'static AppWatch {
        self.watch
    }

    /// Its limits.
    pub fn limits(&self) -> InstanceLimits {
        self.limits
    }

    /// Whether a new task may be spawned (logs the first refusal of a run).
    fn may_spawn(&self) -> bool {
        if self.tasks.len() < self.limits.max_tasks {
            self.refusing.store(false, Ordering::Relaxed);
            return true;
        }
        if !self.refusing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                app = &*self.name,
                max_tasks = self.limits.max_tasks,
                "the app has its most spawned tasks alive; further spawns are dropped (apps.NAME.max_tasks)"
            );
        }
        false
    }

    /// Cancels (drops) every task the module spawned and waits until they
    /// are gone; tasks spawned after this are dropped at once.
    pub async fn cancel_tasks(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    pub(in crate::abi) fn abi_ptr(&'static self) -> *const abi::HostApp {
        (self as *const HostApp).cast()
    }
}

host_fn! {
    fn host_log(app: *const abi::HostApp, level: u32, target: RawSlice, message: RawSlice) = ();
    {
        // SAFETY: `app` is null or the `HostApp` handed to this module's
        // init, leaked and so valid for the process.
        let app = unsafe { app.cast::<HostApp>().as_ref() }.map_or("?", |a| &a.name);
        let (target, message) = (text(target), text(message));
        match level {
            LOG_ERROR => tracing::error!(target: "crabcat::app", app, module = %target, "{message}"),
            LOG_WARN => tracing::warn!(target: "crabcat::app", app, module = %target, "{message}"),
            LOG_INFO => tracing::info!(target: "crabcat::app", app, module = %target, "{message}"),
            LOG_DEBUG => tracing::debug!(target: "crabcat::app", app, module = %target, "{message}"),
            LOG_TRACE => tracing::trace!(target: "crabcat::app", app, module = %target, "{message}"),
            _ => tracing::info!(target: "crabcat::app", app, module = %target, level, "{message}"),
        }
    }
}

host_fn! {
    fn host_sleep(millis: u64) -> FfiFuture<()> = FfiFuture::new(async {});
    {
        // The timer is created on first poll, inside the host runtime.
        FfiFuture::new(async move { tokio::time::sleep(Duration::from_millis(millis)).await })
    }
}

host_fn! {
    fn host_spawn(app: *const abi::HostApp, task: FfiFuture<()>) = ();
    {
        // SAFETY: `app` is the leaked `HostApp` of this module's init, or null.
        let Some(app) = (unsafe { app.cast::<HostApp>().as_ref() }) else {
            null_argument("spawn");
            return; // dropping `task` runs the module's drop function
        };
        if app.cancel.is_cancelled() || !app.may_spawn() {
            return; // dropping `task` runs the module's drop function
        }
        let cancel = app.cancel.clone();
        let watch = app.watch;
        app.tasks.spawn_on(
            async move {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = watch.watched(task) => {}
                }
            },
            &app.runtime,
        );
    }
}
