//! HTTP sessions: attributes the container keeps for a visitor between
//! requests, found by a cookie it manages.
//!
//! ```no_run
//! # use crabcat_sdk::prelude::*;
//! async fn visit(req: Request) -> Result<String> {
//!     let session = req.session().await?;
//!     let visits = session.get::<u32>("visits")?.unwrap_or(0) + 1;
//!     session.insert("visits", &visits)?;
//!     Ok(format!("visit number {visits}"))
//! }
//! ```
//!
//! The container owns the cookie (`HttpOnly`, `SameSite=Lax`, `Path` =
//! the app's context path, `Secure` over TLS), the ids and the store: the
//! session survives a reload of the app and a restart of the container,
//! and expires after `sessions.idle_timeout` unused (30 minutes by
//! default) or `sessions.max_lifetime` after it began. What a handler
//! changes is stored when it returns (before the response is sent), and
//! only what it changed: of two concurrent requests of one session, each
//! attribute keeps the value of the last one that wrote it.
//!
//! Values are stored as JSON (serde); a session is at most
//! `sessions.max_bytes` (64 KiB by default).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{SESSION_OFF, SESSION_OK, SESSION_TOO_LARGE};
use crate::ffi::host::RequestHandle;

/// The attribute [`Session::csrf_token`] keeps the token in.
const CSRF_KEY: &str = "_csrf";

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session store could not be read (the container logged why).
    /// Becomes `503 Service Unavailable` when returned from a handler.
    #[error("the session store is unavailable")]
    Unavailable,
    /// The container runs with sessions turned off (`sessions.datasource`
    /// is empty).
    #[error("sessions are turned off in this container (sessions.datasource is empty)")]
    Off,
    /// The write would make the session larger than `sessions.max_bytes`;
    /// nothing changed.
    #[error("attribute {0:?} would make the session larger than the container allows (sessions.max_bytes)")]
    TooLarge(String),
    /// A value could not be serialised, or a stored one does not
    /// deserialise into the type asked for.
    #[error("session attribute {name:?}: {source}")]
    Value {
        /// The attribute.
        name: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

impl SessionError {
    /// The HTTP status a handler returning it answers with.
    pub fn status(&self) -> http::StatusCode {
        match self {
            SessionError::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The session of one request, from [`Request::session`](crate::Request::session).
///
/// Reading is free (the attributes were loaded once); every change is
/// written to the store when the handler returns.
#[derive(Clone, Copy)]
pub struct Session<'r> {
    handle: &'r RequestHandle,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

fn check(code: u32, name: &str) -> Result<(), SessionError> {
    match code {
        SESSION_OK => Ok(()),
        SESSION_OFF => Err(SessionError::Off),
        SESSION_TOO_LARGE => Err(SessionError::TooLarge(name.to_owned())),
        // Not loaded cannot happen through `Session`, which only exists
        // after a load; anything else is the store.
        _ => Err(SessionError::Unavailable),
    }
}

impl<'r> Session<'r> {
    /// Loads the session of the request behind `handle`.
    pub(crate) async fn load(handle: &'r RequestHandle) -> Result<Self, SessionError> {
        check(handle.session_load().await, "")?;
        Ok(Session { handle })
    }

    /// Attribute `name`, if the session has it.
    ///
    /// # Errors
    /// [`SessionError::Value`] if the stored value is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, SessionError> {
        let Some(bytes) = self.handle.session_get(name) else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| SessionError::Value {
                name: name.to_owned(),
                source,
            })
    }

    /// Sets attribute `name` to `value`.
    ///
    /// # Errors
    /// [`SessionError::TooLarge`] (nothing changed) or
    /// [`SessionError::Value`] if `value` does not serialise.
    pub fn insert<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), SessionError> {
        let bytes = serde_json::to_vec(value).map_err(|source| SessionError::Value {
            name: name.to_owned(),
            source,
        })?;
        check(self.handle.session_set(name, Some(&bytes)), name)
    }

    /// Removes attribute `name`.
    pub fn remove(&self, name: &str) {
        // Only fails if not loaded, which a `Session` always is.
        let _ = self.handle.session_set(name, None);
    }

    /// Removes attribute `name` and returns it: a flash message, shown once.
    ///
    /// # Errors
    /// [`SessionError::Value`] if the stored value is not a `T` (it is
    /// removed all the same).
    pub fn take<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, SessionError> {
        let value = self.get(name);
        if !matches!(value, Ok(None)) {
            self.remove(name);
        }
        value
    }

    /// Gives the session a new id and keeps its attributes. Call it when
    /// the visitor logs in: an id an attacker planted in the browser
    /// before (session fixation) is worth nothing afterwards.
    pub fn renew(&self) {
        // Only fails if not loaded, which a `Session` always is.
        let _ = self.handle.session_end(true);
    }

    /// Ends the session: it is deleted from the store and the browser is
    /// told to forget its cookie. What is set afterwards starts a new one.
    pub fn invalidate(&self) {
        // As in `renew`.
        let _ = self.handle.session_end(false);
    }

    /// The session's CSRF token, made on first use (256 random bits): put
    /// it in every form that changes something, and check what comes back
    /// with [`verify_csrf`](Self::verify_csrf).
    ///
    /// # Errors
    /// As [`insert`](Self::insert), when the token is new.
    ///
    /// # Panics
    /// If the operating system has no random source.
    pub fn csrf_token(&self) -> Result<String, SessionError> {
        if let Some(token) = self.get::<String>(CSRF_KEY)? {
            return Ok(token);
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.insert(CSRF_KEY, &token)?;
        Ok(token)
    }

    /// Whether `token` (from a submitted form) is this session's CSRF
    /// token. Compared in constant time; `false` when the session has none.
    pub fn verify_csrf(&self, token: &str) -> bool {
        let Ok(Some(expected)) = self.get::<String>(CSRF_KEY) else {
            return false;
        };
        let (a, b) = (expected.as_bytes(), token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
