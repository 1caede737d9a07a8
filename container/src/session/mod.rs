//! HTTP sessions, kept by the container for its apps.
//!
//! A session is a set of named attributes (serialised JSON, as the SDK
//! writes them), found by a random id in a cookie. The container owns all
//! of it: the cookie (`HttpOnly`, `SameSite=Lax`, `Path` = the app's
//! context path, `Secure` over TLS), the ids (256 bits from the operating
//! system), the store (a datasource: the embedded SQLite file by default,
//! PostgreSQL when several containers share sessions) and expiry. So
//! sessions survive a reload, a stop/start and a restart of the container.
//!
//! * A request loads its session only when the app asks for it
//!   ([`AppSessions::open`]); an unknown, expired or tampered cookie gives
//!   a new, empty session, silently.
//! * A new session is stored (and its cookie set) only once something is
//!   written to it; a session is written back only when the request
//!   changed it, or (its access time) when it was last touched more than
//!   a minute ago.
//! * The store keeps the SHA-256 of the id, never the id.
//! * Concurrent requests of one session: each writes only the attributes
//!   it changed, so the last write of an attribute wins; invalidation
//!   wins over everything (a request that saves after another invalidated
//!   the session loses its changes).

mod cookie;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::HeaderValue;

pub use store::{Store, StoreError};

use crate::config::{AppConfig, SessionsConfig};

/// The access time is written back at most this often for a session the
/// request did not change (or at half the idle timeout, if shorter).
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// One app's session settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A session unused this long expires.
    pub idle_timeout: Duration,
    /// A session expires this long after its creation.
    pub max_lifetime: Duration,
    /// Largest session: names and values, in bytes.
    pub max_bytes: usize,
    /// The cookie's name.
    pub cookie_name: Arc<str>,
    /// `Secure` on every cookie, not only over TLS.
    pub always_secure: bool,
}

impl Settings {
    /// `[sessions]` with app `app`'s overrides.
    pub fn of(sessions: &SessionsConfig, app: &AppConfig) -> Self {
        Settings {
            idle_timeout: app.session_idle_timeout.unwrap_or(sessions.idle_timeout),
            max_lifetime: app.session_max_lifetime.unwrap_or(sessions.max_lifetime),
            max_bytes: sessions.max_bytes,
            cookie_name: sessions.cookie_name.as_str().into(),
            always_secure: app.session_cookie_secure,
        }
    }

    fn touch_interval(&self) -> Duration {
        TOUCH_INTERVAL.min(self.idle_timeout / 2)
    }
}

/// One app's sessions: the container's store and the app's settings.
pub struct AppSessions {
    app: Arc<str>,
    /// The app's context path (`/` for the root app): the cookie's `Path`.
    cookie_path: Arc<str>,
    store: Arc<Store>,
    settings: Settings,
}

/// Milliseconds since the Unix epoch: the store's clock.
pub fn now_millis() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl AppSessions {
    /// App `app`'s sessions, mounted at `context_path` (empty for `/`).
    pub fn new(app: Arc<str>, context_path: &str, store: Arc<Store>, settings: Settings) -> Self {
        let cookie_path = if context_path.is_empty() { "/" } else { context_path };
        AppSessions {
            app,
            cookie_path: cookie_path.into(),
            store,
            settings,
        }
    }

    /// The session of a request with `headers`: the one its cookie names,
    /// or a new, empty one.
    ///
    /// # Errors
    /// The store could not be read.
    pub async fn open(&self, headers: &HeaderMap) -> Result<Session, StoreError> {
        let now = now_millis();
        for id in cookie::ids(headers, &self.settings.cookie_name) {
            let hash = cookie::hash(id);
            if let Some(found) = self.store.load(&self.app, &hash, now).await? {
                return Ok(Session::found(hash, found, now, &self.settings));
            }
        }
        Ok(Session::fresh(self.settings.max_bytes))
    }

    /// Stores what `session` changed; the `Set-Cookie` value the response
    /// needs, if any. `secure`: the request came over TLS.
    ///
    /// # Errors
    /// The store could not be written.
    pub async fn save(&self, session: &Session, secure: bool) -> Result<Option<HeaderValue>, StoreError> {
        let now = now_millis();
        let store = &self.store;
        if let Some(old) = &session.invalidated {
            store.delete(old).await?;
        }
        let cookie = match &session.stored {
            Some(stored) => {
                let expires = self.expiry(stored.created_at, now);
                if session.renew {
                    let id = cookie::new_id();
                    store
                        .rekey(&stored.hash, &cookie::hash(&id), now, expires, &session.changes)
                        .await?;
                    Some(id)
                } else if !session.changes.is_empty() {
                    store.update(&stored.hash, now, expires, &session.changes).await?;
                    None
                } else if stored.touch_due {
                    store.touch(&stored.hash, now, expires).await?;
                    None
                } else {
                    None
                }
            }
            None if !session.values.is_empty() => {
                let id = cookie::new_id();
                let expires = self.expiry(now, now);
                store
                    .insert(&cookie::hash(&id), &self.app, now, expires, &session.values)
                    .await?;
                Some(id)
            }
            // Invalidated and nothing new: the client forgets its cookie.
            None if session.invalidated.is_some() => return Ok(Some(self.cookie("", secure, true))),
            None => None,
        };
        Ok(cookie.map(|id| self.cookie(&id, secure, false)))
    }

    /// The app's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn expiry(&self, created_at: i64, now: i64) -> i64 {
        let idle = now.saturating_add(millis(self.settings.idle_timeout));
        let lifetime = created_at.saturating_add(millis(self.settings.max_lifetime));
        idle.min(lifetime)
    }

    fn cookie(&self, id: &str, secure: bool, clear: bool) -> HeaderValue {
        let secure = secure || self.settings.always_secure;
        cookie::set_cookie(&self.settings.cookie_name, id, &self.cookie_path, secure, clear)
    }
}

/// A stored session a request found.
#[derive(Debug, Clone)]
struct Stored {
    hash: String,
    created_at: i64,
    /// Its access time is old enough to be written back.
    touch_due: bool,
}

/// What a request's session holds and what the request changed.
#[derive(Debug, Clone)]
pub struct Session {
    /// The stored session this is (none: new, stored once written to).
    stored: Option<Stored>,
    /// The attributes as this request sees them.
    values: BTreeMap<String, Vec<u8>>,
    /// What this request set (`Some`) or removed (`None`).
    changes: BTreeMap<String, Option<Vec<u8>>>,
    /// Bytes of names and values in `values`.
    size: usize,
    max_bytes: usize,
    /// Give the stored session a new id.
    renew: bool,
    /// The stored session this request invalidated.
    invalidated: Option<String>,
}

/// A write that would make the session larger than `sessions.max_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("the session would be {size} bytes, more than sessions.max_bytes ({max} bytes)")]
pub struct TooLarge {
    /// The size it would have had.
    pub size: usize,
    /// The limit.
    pub max: usize,
}

impl Session {
    fn fresh(max_bytes: usize) -> Self {
        Session {
            stored: None,
            values: BTreeMap::new(),
            changes: BTreeMap::new(),
            size: 0,
            max_bytes,
            renew: false,
            invalidated: None,
        }
    }

    fn found(hash: String, found: store::Found, now: i64, settings: &Settings) -> Self {
        let touch_due = now.saturating_sub(found.accessed_at) >= millis(settings.touch_interval());
        let size = found.values.iter().map(|(k, v)| k.len() + v.len()).sum();
        Session {
            stored: Some(Stored {
                hash,
                created_at: found.created_at,
                touch_due,
            }),
            values: found.values,
            size,
            ..Self::fresh(settings.max_bytes)
        }
    }

    /// Attribute `name`'s serialised value.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.values.get(name).map(Vec::as_slice)
    }

    /// Sets attribute `name`.
    ///
    /// # Errors
    /// The session would be larger than its limit; nothing changed.
    pub fn set(&mut self, name: &str, value: &[u8]) -> Result<(), TooLarge> {
        let old = self.values.get(name).map_or(0, |v| name.len() + v.len());
        let size = self.size - old + name.len() + value.len();
        if size > self.max_bytes {
            return Err(TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        self.size = size;
        self.values.insert(name.to_owned(), value.to_vec());
        self.changes.insert(name.to_owned(), Some(value.to_vec()));
        Ok(())
    }

    /// Removes attribute `name`.
    pub fn remove(&mut self, name: &str) {
        if let Some(old) = self.values.remove(name) {
            self.size -= name.len() + old.len();
        }
        if self.stored.is_some() {
            self.changes.insert(name.to_owned(), None);
        } else {
            self.changes.remove(name);
        }
    }

    /// Ends the session: it is deleted, and what is written after this
    /// goes to a new one.
    pub fn invalidate(&mut self) {
        if let Some(stored) = self.stored.take() {
            self.invalidated = Some(stored.hash);
        }
        self.values.clear();
        self.changes.clear();
        self.size = 0;
        self.renew = false;
    }

    /// Gives the session a new id, keeping its attributes (call it at
    /// login: an id an attacker planted before is worthless after).
    pub fn renew(&mut self) {
        self.renew = self.stored.is_some();
    }

    /// Whether saving it would write anything or set a cookie.
    pub fn needs_saving(&self) -> bool {
        match &self.stored {
            Some(stored) => self.renew || !self.changes.is_empty() || stored.touch_due,
            None => !self.values.is_empty() || self.invalidated.is_some(),
        }
    }
}

/// Deletes expired sessions, looking every `sessions.sweep_interval`: it
/// sweeps when sessions were written since the last sweep, or when the
/// earliest expiry the last sweep left has passed (and once after start).
/// An idle container runs one cheap timer and no query.
pub async fn sweep(store: Arc<Store>, interval: Duration, shutdown: tokio_util::sync::CancellationToken) {
    // The schema, once, in the background: the first session (and the
    // first admin count) need not wait for it.
    if let Err(error) = store.prepare().await {
        tracing::warn!(%error, "the session store is not ready; will retry on first use");
    }
    // The earliest expiry of a session left by the last sweep; `Some(0)`:
    // unknown, sweep at the first look.
    let mut next_expiry = Some(0);
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
        let now = now_millis();
        let written = store.take_written();
        if !written && next_expiry.is_none_or(|at| at > now) {
            continue;
        }
        match store.sweep(now).await {
            Ok((swept, next)) => {
                next_expiry = next;
                if swept > 0 {
                    tracing::info!(swept, "deleted expired sessions");
                }
            }
            Err(error) => {
                next_expiry = Some(0);
                tracing::warn!(%error, "could not delete expired sessions; will retry");
            }
        }
    }
}

#[cfg(test)]
mod tests;
