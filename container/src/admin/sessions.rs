//! The admin API's session endpoints and the session counts its app
//! views show.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, State};

use super::AdminState;
use super::handlers::{AdminError, valid_name};
use crate::session;

/// Live sessions per app, if sessions are on and the store answers
/// within [`SESSION_COUNT_TIMEOUT`]: the admin API must answer when the
/// session database is slow or gone. Counted at most once a second.
pub(super) async fn session_counts(state: &AdminState) -> Option<BTreeMap<String, u64>> {
    let store = state.manager.sessions()?;
    if let Some(fresh) = state.session_counts.fresh() {
        return Some(fresh);
    }
    let counted = tokio::time::timeout(SESSION_COUNT_TIMEOUT, store.counts(session::now_millis())).await;
    match counted {
        Ok(Ok(counts)) => {
            state.session_counts.keep(&counts);
            Some(counts)
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not count sessions");
            None
        }
        Err(_) => {
            tracing::warn!(store = store.datasource(), "counting sessions took too long; left out");
            None
        }
    }
}

/// The longest an admin call waits for the session store.
const SESSION_COUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// The last session counts, kept a second.
#[derive(Default)]
pub struct CountCache(std::sync::Mutex<Option<(std::time::Instant, BTreeMap<String, u64>)>>);

impl CountCache {
    const FRESH: std::time::Duration = std::time::Duration::from_secs(1);

    fn fresh(&self) -> Option<BTreeMap<String, u64>> {
        let cached = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < Self::FRESH)
            .map(|(_, counts)| counts.clone())
    }

    fn keep(&self, counts: &BTreeMap<String, u64>) {
        let mut cached = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *cached = Some((std::time::Instant::now(), counts.clone()));
    }

    /// Forgets the counts (after sessions were expired).
    pub(super) fn clear(&self) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// `?idle=MINUTES` of a session expiry, as Tomcat's manager takes it.
#[derive(Debug, serde::Deserialize)]
pub struct Idle {
    /// Expire the sessions idle at least this many minutes; every one
    /// when absent.
    idle: Option<u64>,
}

/// `POST /apps/{name}/sessions/expire?idle=MINUTES`: expires the app's
/// sessions idle at least that long (all of them without `idle`).
pub async fn expire_sessions(
    State(state): State<Arc<AdminState>>,
    UrlPath(name): UrlPath<String>,
    axum::extract::Query(Idle { idle }): axum::extract::Query<Idle>,
) -> Result<Json<serde_json::Value>, AdminError> {
    valid_name(&name)?;
    let store = state.manager.sessions().ok_or(AdminError::SessionsOff)?;
    let idle_millis = idle.map_or(0, |minutes| {
        i64::try_from(minutes.saturating_mul(60_000)).unwrap_or(i64::MAX)
    });
    let expired = store
        .expire(&name, session::now_millis(), idle_millis)
        .await
        .map_err(|e| AdminError::Sessions(e.to_string()))?;
    state.session_counts.clear();
    tracing::info!(app = %name, expired, idle_minutes = idle, "sessions expired through the admin API");
    let left = store
        .counts(session::now_millis())
        .await
        .ok()
        .and_then(|c| c.get(&name).copied());
    Ok(Json(
        serde_json::json!({ "app": name, "expired": expired, "sessions": left.unwrap_or(0) }),
    ))
}
