//! `sessions` and `expire`: Tomcat's session profile of one app, and the
//! seam where Crabcat's HTTP sessions plug in.
//!
//! The data comes from the container's session store: [`session_profile`]
//! (one app's sessions, expiring the idle ones on request) and
//! [`session_count`] (the count `list` shows). With sessions off, or for an
//! app that does not run, both commands answer Tomcat's `noManager` line.

use super::commands::find_app;
use super::{Lines, Params, messages};
use std::collections::BTreeMap;

use crate::admin::AdminState;
use crate::session;

/// One app's sessions as Tomcat's `sessions` command reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionProfile {
    /// The app's session timeout in minutes (`Default maximum session
    /// inactive interval`); `0` or less: sessions never time out.
    pub max_inactive_minutes: i64,
    /// How long each live session has been idle, in seconds. Tomcat's
    /// integer arithmetic is kept: a value of minus one bucket or less
    /// (e.g. `-3600`) is counted as `Unlimited time`.
    pub idle_seconds: Vec<i64>,
    /// Sessions expired by this call (those idle at least the `idle=`
    /// minutes asked for).
    pub expired: u64,
}

/// The sessions of app `app`, after expiring those idle for at least
/// `expire_idle_minutes` (when given and not negative; Tomcat's `idle=`,
/// `expire` and `sessions` alike). `None`: the app has no session manager
/// (Tomcat's `FAIL - No manager exists for path`): sessions are off, the
/// app does not run, or the store cannot be read (logged).
pub async fn session_profile(
    state: &AdminState,
    app: &str,
    expire_idle_minutes: Option<i64>,
) -> Option<SessionProfile> {
    let store = state.manager.sessions()?;
    let idle_timeout = state.manager.session_idle_timeout(app)?;
    let now = session::now_millis();
    let mut expired = 0;
    if let Some(minutes) = expire_idle_minutes.filter(|m| *m >= 0) {
        expired = store
            .expire(app, now, minutes.saturating_mul(60_000))
            .await
            .inspect_err(|error| tracing::warn!(app, %error, "could not expire sessions"))
            .ok()?;
        state.session_counts.clear();
        tracing::info!(
            app,
            expired,
            idle_minutes = minutes,
            "sessions expired through the manager API"
        );
    }
    let accessed = store
        .accessed_times(app, now)
        .await
        .inspect_err(|error| tracing::warn!(app, %error, "could not read sessions"))
        .ok()?;
    Some(SessionProfile {
        max_inactive_minutes: i64::try_from(idle_timeout.as_secs() / 60).unwrap_or(i64::MAX),
        idle_seconds: accessed.iter().map(|at| now.saturating_sub(*at) / 1000).collect(),
        expired,
    })
}

/// Live sessions of the running app `app` in `counts`, for `list`'s
/// `path:running:SESSIONS:docBase` lines (`0` when they could not be counted).
pub fn session_count(counts: Option<&BTreeMap<String, u64>>, app: &str) -> usize {
    counts
        .and_then(|c| c.get(app))
        .map_or(0, |n| usize::try_from(*n).unwrap_or(usize::MAX))
}

/// `sessions` and `expire` (Tomcat treats both alike: `idle=N` expires the
/// sessions idle for `N` minutes or more; a bad `N` is ignored).
pub async fn sessions(state: &AdminState, params: &Params) -> Lines {
    let (name, app) = match find_app(state, params) {
        Ok(found) => found,
        Err(fail) => return fail,
    };
    let idle = params.get("idle").and_then(|v| v.parse::<i32>().ok()).map(i64::from);
    match session_profile(state, &app.name, idle).await {
        Some(profile) => Lines(render(name.display(), &profile, idle)),
        None => Lines::one(messages::no_manager(name.display())),
    }
}

/// Tomcat's `ManagerServlet.sessions` output: the status line, the default
/// timeout, then a histogram of idle times in at most 60 buckets.
fn render(path: &str, profile: &SessionProfile, idle: Option<i64>) -> Vec<String> {
    let max_inactive = profile.max_inactive_minutes;
    let (mut max_count, mut interval) = (60_i64, 1_i64);
    if max_inactive > 0 {
        interval = max_inactive / max_count;
        if interval * max_count < max_inactive {
            interval += 1;
        }
        if interval == 0 {
            interval = 1;
        }
        max_count = max_inactive / interval;
        if interval * max_count < max_inactive {
            max_count += 1;
        }
    }
    let mut lines = vec![messages::sessions(path), messages::session_default_max(max_inactive)];
    let mut timeout = vec![0_u64; usize::try_from(max_count).unwrap_or(0) + 1];
    let mut unlimited = 0;
    for &seconds in &profile.idle_seconds {
        let bucket = seconds / 60 / interval;
        if bucket < 0 {
            unlimited += 1;
        } else {
            let bucket = usize::try_from(bucket.min(max_count)).unwrap_or(0);
            timeout[bucket] += 1;
        }
    }
    let last = timeout.len() - 1;
    for (i, &count) in timeout.iter().enumerate().filter(|(_, c)| **c > 0) {
        let i = i as i64;
        let range = match i {
            0 => format!("<{interval}"),
            _ if i as usize == last => format!(">={}", max_count * interval),
            _ => format!("{} - <{}", i * interval, (i + 1) * interval),
        };
        lines.push(messages::session_timeout(&range, count));
    }
    if unlimited > 0 {
        lines.push(messages::session_timeout_unlimited(unlimited));
    }
    if let Some(idle) = idle.filter(|i| *i >= 0) {
        lines.push(messages::session_timeout_expired(&format!(">{idle}"), profile.expired));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_is_rendered_as_tomcat_renders_it() {
        // A 30-minute timeout: Tomcat computes buckets of 1 minute, 30 of them.
        let profile = SessionProfile {
            max_inactive_minutes: 30,
            idle_seconds: vec![5, 59, 61, 150, 45 * 60, -3600],
            expired: 1,
        };
        assert_eq!(
            render("/shop", &profile, Some(40)),
            [
                "OK - Session information for application at context path [/shop]",
                "Default maximum session inactive interval is [30] minutes",
                "Inactive for [<1] minutes: [2] sessions",
                "Inactive for [1 - <2] minutes: [1] sessions",
                "Inactive for [2 - <3] minutes: [1] sessions",
                "Inactive for [>=30] minutes: [1] sessions",
                "Unlimited time: [1] sessions",
                "Inactive for [>40] minutes: [1] sessions were expired",
            ]
        );
        // A 600-minute timeout: buckets of 10 minutes.
        let profile = SessionProfile {
            max_inactive_minutes: 600,
            idle_seconds: vec![25 * 60],
            expired: 0,
        };
        assert_eq!(
            render("/", &profile, None)[2..],
            ["Inactive for [20 - <30] minutes: [1] sessions"]
        );
    }
}
