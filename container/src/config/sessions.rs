//! `[sessions]`: HTTP sessions, kept by the container for its apps.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[sessions]`: the container keeps each app's HTTP sessions in a
/// datasource, so they survive reloads and restarts (and, on a shared
/// PostgreSQL datasource, are seen by every container).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// The datasource sessions are stored in (`default`: the embedded
    /// SQLite file unless configured otherwise); empty turns sessions off.
    pub datasource: String,
    /// A session unused this long expires (`[apps.NAME]
    /// session_idle_timeout` overrides it per app).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session expires this long after it was created, however much it
    /// is used (`[apps.NAME] session_max_lifetime` overrides it per app).
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// Largest session (names and serialised values), per app; a write
    /// past it is refused with an error the app sees.
    pub max_bytes: usize,
    /// The session cookie's name.
    pub cookie_name: String,
    /// How often expired sessions are deleted.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            datasource: "default".to_owned(),
            idle_timeout: Duration::from_secs(30 * 60),
            max_lifetime: Duration::from_secs(12 * 3600),
            max_bytes: 64 * 1024,
            cookie_name: "CRABCAT_SESSION".to_owned(),
            sweep_interval: Duration::from_secs(5 * 60),
        }
    }
}
