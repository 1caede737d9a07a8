//! What a module reports while it starts: its routes and `init` error
//! (during `init`), its migrations (during `migrations`).

use crabcat_sdk::abi::{self, RawSlice};

use super::{null_argument, text};

/// One route a module registered during `init`.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: String,
    pub pattern: String,
    pub blocking: bool,
    pub transactional: bool,
    /// The handler reads the body as it arrives.
    pub stream_body: bool,
    pub websocket: bool,
    /// The route's own body limit, if it set one.
    pub max_body: Option<u64>,
}

/// One migration variant a module reported.
#[derive(Debug, Clone)]
pub struct MigrationSpec {
    pub version: i64,
    pub description: String,
    /// Empty for the default SQL, else `postgres` or `sqlite`.
    pub backend: String,
    pub sql: String,
}

/// What `migrations` reports.
#[derive(Default)]
pub(in crate::abi) struct MigrationSink {
    pub migrations: Vec<MigrationSpec>,
}

/// What `init` reports besides its return value.
#[derive(Default)]
pub(in crate::abi) struct InitSink {
    pub routes: Vec<RouteSpec>,
    pub error: Option<String>,
}

/// The sink of the current `init` call; `None` for null.
///
/// # Safety
/// `sink` must be null or the sink of the current `init` call.
unsafe fn sink_mut<'a>(sink: *mut abi::InitSink) -> Option<&'a mut InitSink> {
    // SAFETY: by the caller; init runs on one thread.
    unsafe { sink.cast::<InitSink>().as_mut() }
}

host_fn! {
    fn init_route(sink: *mut abi::InitSink, method: RawSlice, pattern: RawSlice, flags: u32, max_body: u64) = ();
    {
        // SAFETY: the module passes back the sink of its init call, or null.
        let Some(sink) = (unsafe { sink_mut(sink) }) else {
            return null_argument("route");
        };
        sink.routes.push(RouteSpec {
            method: text(method),
            pattern: text(pattern),
            blocking: flags & abi::ROUTE_BLOCKING != 0,
            transactional: flags & abi::ROUTE_TRANSACTIONAL != 0,
            stream_body: flags & abi::ROUTE_STREAM_BODY != 0,
            websocket: flags & abi::ROUTE_WEBSOCKET != 0,
            max_body: (max_body > 0).then_some(max_body),
        });
    }
}

host_fn! {
    fn init_error(sink: *mut abi::InitSink, message: RawSlice) = ();
    {
        // SAFETY: the module passes back the sink of its init call, or null.
        match unsafe { sink_mut(sink) } {
            Some(sink) => sink.error = Some(text(message)),
            None => null_argument("init_error"),
        }
    }
}

host_fn! {
    fn host_migration(
        sink: *mut abi::MigrationSink,
        version: i64,
        description: RawSlice,
        backend: RawSlice,
        sql: RawSlice,
    ) = ();
    {
        // SAFETY: the sink of the current `migrations` call, on this
        // thread, or null.
        let Some(sink) = (unsafe { sink.cast::<MigrationSink>().as_mut() }) else {
            return null_argument("migration");
        };
        sink.migrations.push(MigrationSpec {
            version,
            description: text(description),
            backend: text(backend),
            sql: text(sql),
        });
    }
}
