//! Session calls from a module: load the request's session from the
//! store, read and change its attributes. The dispatcher stores what
//! changed when the handler returns (`HostRequest::session`).

use std::sync::{Mutex, PoisonError};

use crabcat_sdk::abi::{
    self, FfiFuture, RawSlice, SESSION_NOT_LOADED, SESSION_OFF, SESSION_OK, SESSION_TOO_LARGE, SESSION_UNAVAILABLE,
};

use super::db::buffer;
use super::request::{HostRequest, request_arc, request_ref};
use super::{borrowed_text, null_argument, slice};
use crate::session::Session;

/// A request's session, loaded on the module's first call.
pub type SessionCell = tokio::sync::OnceCell<Box<Mutex<Session>>>;

const NO_BUFFER: abi::BufferHandle = abi::BufferHandle {
    ptr: std::ptr::null_mut(),
    len: 0,
    capacity: 0,
};

host_fn! {
    fn session_load(request: *const abi::HostRequest) -> FfiFuture<u32> = FfiFuture::new(async { SESSION_UNAVAILABLE });
    {
        // SAFETY: the module passes back the request it was given, or null.
        let Some(request) = (unsafe { request_arc(request) }) else {
            null_argument("session_load");
            return FfiFuture::new(async { SESSION_UNAVAILABLE });
        };
        if request.session.initialized() {
            return FfiFuture::new(async { SESSION_OK });
        }
        let Some(sessions) = request.host_app.sessions().cloned() else {
            return FfiFuture::new(async { SESSION_OFF });
        };
        FfiFuture::new(async move {
            let open = || async { sessions.open(&request.headers).await.map(|s| Box::new(Mutex::new(s))) };
            match request.session.get_or_try_init(open).await {
                Ok(_) => SESSION_OK,
                Err(error) => {
                    tracing::error!(app = request.host_app.name(), %error, "could not load a session");
                    SESSION_UNAVAILABLE
                }
            }
        })
    }
}

/// The loaded session of `request`, if any, for a call named `callback`.
///
/// # Safety
/// `request` must be null or a request the host lent the module.
unsafe fn loaded<'a>(request: *const abi::HostRequest, callback: &str) -> Option<&'a Mutex<Session>> {
    // SAFETY: by the caller.
    let Some(request) = (unsafe { request_ref(request) }) else {
        null_argument(callback);
        return None;
    };
    request.session.get().map(|s| &**s)
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(PoisonError::into_inner)
}

host_fn! {
    fn session_get(request: *const abi::HostRequest, name: RawSlice) -> abi::BufferHandle = NO_BUFFER;
    {
        // SAFETY: the module's live request (or null) and a name valid for the call.
        let (session, name) = unsafe { (loaded(request, "session_get"), borrowed_text(name)) };
        let Some(session) = session else { return NO_BUFFER };
        lock(session).get(&name).map_or(NO_BUFFER, |value| buffer(value.to_vec()))
    }
}

host_fn! {
    fn session_set(request: *const abi::HostRequest, name: RawSlice, value: RawSlice) -> u32 = SESSION_UNAVAILABLE;
    {
        // SAFETY: the module's live request (or null) and slices valid for the call.
        let (session, name) = unsafe { (loaded(request, "session_set"), borrowed_text(name)) };
        let Some(session) = session else { return SESSION_NOT_LOADED };
        let mut session = lock(session);
        if value.is_null() {
            session.remove(&name);
            return SESSION_OK;
        }
        // SAFETY: valid for the call; `set` copies it.
        match session.set(&name, unsafe { slice(value) }) {
            Ok(()) => SESSION_OK,
            Err(_) => SESSION_TOO_LARGE,
        }
    }
}

host_fn! {
    fn session_renew(request: *const abi::HostRequest) -> u32 = SESSION_UNAVAILABLE;
    {
        // SAFETY: the module's live request, or null.
        let Some(session) = (unsafe { loaded(request, "session_renew") }) else { return SESSION_NOT_LOADED };
        lock(session).renew();
        SESSION_OK
    }
}

host_fn! {
    fn session_invalidate(request: *const abi::HostRequest) -> u32 = SESSION_UNAVAILABLE;
    {
        // SAFETY: the module's live request, or null.
        let Some(session) = (unsafe { loaded(request, "session_invalidate") }) else { return SESSION_NOT_LOADED };
        lock(session).invalidate();
        SESSION_OK
    }
}

impl HostRequest {
    /// The session the handler loaded, if it changed and must be saved:
    /// a copy, so the store can be written without holding the lock.
    pub fn session_to_save(&self) -> Option<Session> {
        let session = lock(self.session.get()?);
        session.needs_saving().then(|| session.clone())
    }
}
