//! What serde cannot check: ranges, references between sections, context
//! paths.

use super::{Config, ConfigError};

impl Config {
    /// Checks what serde cannot.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.server.max_body_bytes == 0 {
            return invalid("server.max_body_bytes".into(), "must be greater than 0");
        }
        if self.server.request_timeout.is_zero() {
            return invalid("server.request_timeout".into(), "must be greater than 0");
        }
        if self.server.header_read_timeout.is_zero() {
            return invalid("server.header_read_timeout".into(), "must be greater than 0");
        }
        if self.server.max_connections == 0 {
            return invalid("server.max_connections".into(), "must be greater than 0");
        }
        if self.server.max_header_bytes < 8192 {
            return invalid("server.max_header_bytes".into(), "must be at least 8192");
        }
        if self.server.max_uri_bytes == 0 {
            return invalid("server.max_uri_bytes".into(), "must be greater than 0");
        }
        if self.deploy.max_bundle_bytes == 0 {
            return invalid("deploy.max_bundle_bytes".into(), "must be greater than 0");
        }
        if self.deploy.max_bundle_entries == 0 {
            return invalid("deploy.max_bundle_entries".into(), "must be greater than 0");
        }
        if let Some(tls) = &self.server.tls {
            for (key, path) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
                if path.as_os_str().is_empty() {
                    return invalid(key.into(), "must be a file's path, not empty");
                }
            }
        }
        if let Some(token) = &self.admin.token
            && token.len() < 16
        {
            return invalid("admin.token".into(), "must be at least 16 characters long");
        }
        if self.admin.token.is_none() && !self.admin.listen.ip().is_loopback() {
            return invalid(
                "admin.listen".into(),
                "a non-loopback admin address needs a configured token (admin.token or CRABCAT_ADMIN_TOKEN)",
            );
        }
        validate_manager(&self.admin.manager)?;
        for (name, ds) in &self.datasources {
            let supported = ["sqlite:", "postgres:", "postgresql:", "mysql:", "mariadb:"];
            if !supported.iter().any(|scheme| ds.url.starts_with(scheme)) {
                return invalid(
                    format!("datasources.{name}.url"),
                    "must start with sqlite://, postgres:// or mysql:// (mariadb:// also works)",
                );
            }
            if ds.max_connections == 0 || ds.min_connections > ds.max_connections {
                return invalid(
                    format!("datasources.{name}.max_connections"),
                    "must be at least 1 and at least min_connections",
                );
            }
        }
        for (name, app) in &self.apps {
            let zero = [
                ("max_requests", app.max_requests),
                ("max_blocking", app.max_blocking),
                ("max_tasks", app.max_tasks),
                ("max_response_bytes", app.max_response_bytes),
            ]
            .into_iter()
            .find(|(_, value)| *value == 0);
            if let Some((key, _)) = zero {
                return invalid(format!("apps.{name}.{key}"), "must be greater than 0");
            }
            if app.worker_threads > MAX_APP_THREADS {
                return invalid(
                    format!("apps.{name}.worker_threads"),
                    &format!("must be at most {MAX_APP_THREADS}"),
                );
            }
            if let Some(missing) = app.datasources.iter().find(|d| !self.datasources.contains_key(*d)) {
                return invalid(
                    format!("apps.{name}.datasources"),
                    &format!("no datasource named {missing}"),
                );
            }
            if let Some(path) = &app.context_path
                && !is_valid_context_path(path)
            {
                return invalid(
                    format!("apps.{name}.context_path"),
                    "must be \"/\" or \"/\" followed by one path segment of letters, digits, '-', '_' or '.'",
                );
            }
            if !is_valid_header_value(&app.static_cache_control) {
                return invalid(format!("apps.{name}.static_cache_control"), "must be printable ASCII");
            }
            if app.static_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
                return invalid(format!("apps.{name}.static_dir"), "must be a directory, not empty");
            }
        }
        self.validate_sessions()?;
        self.validate_cluster()?;
        self.validate_statics()
    }

    /// `[cluster]`: a configured PostgreSQL datasource, a non-empty node name.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let cluster = &self.cluster;
        if cluster.datasource.is_empty() {
            return Ok(());
        }
        let invalid = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                reason,
            })
        };
        match self.datasources.get(&cluster.datasource) {
            None => {
                return invalid(
                    "cluster.datasource",
                    format!("no datasource named {}", cluster.datasource),
                );
            }
            Some(ds) if !ds.url.starts_with("postgres") => {
                return invalid(
                    "cluster.datasource",
                    format!("datasource {} must be PostgreSQL (LISTEN/NOTIFY)", cluster.datasource),
                );
            }
            Some(_) => {}
        }
        if cluster.node.as_ref().is_some_and(|n| n.trim().is_empty()) {
            return invalid("cluster.node", "must not be empty".into());
        }
        Ok(())
    }

    /// `[sessions]`: an existing datasource (or none), positive timeouts, a
    /// cookie name that is an HTTP token.
    fn validate_sessions(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                reason,
            })
        };
        let sessions = &self.sessions;
        // `default` always exists once loaded (`Config::load` adds it).
        let known = |name: &str| name == "default" || self.datasources.contains_key(name);
        if !sessions.datasource.is_empty() && !known(&sessions.datasource) {
            let reason = format!("no datasource named {} (empty turns sessions off)", sessions.datasource);
            return invalid("sessions.datasource", reason);
        }
        let zero = [
            ("sessions.idle_timeout", sessions.idle_timeout),
            ("sessions.max_lifetime", sessions.max_lifetime),
            ("sessions.sweep_interval", sessions.sweep_interval),
        ];
        if let Some((key, _)) = zero.iter().find(|(_, d)| d.is_zero()) {
            return invalid(key, "must be greater than 0".into());
        }
        if sessions.max_bytes == 0 {
            return invalid("sessions.max_bytes", "must be greater than 0".into());
        }
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if sessions.cookie_name.is_empty() || !sessions.cookie_name.chars().all(token) {
            return invalid(
                "sessions.cookie_name",
                "must be letters, digits and !#$%&'*+-.^_`|~".into(),
            );
        }
        for (name, app) in &self.apps {
            let timeouts = [
                ("session_idle_timeout", app.session_idle_timeout),
                ("session_max_lifetime", app.session_max_lifetime),
            ];
            if let Some((key, _)) = timeouts.iter().find(|(_, d)| d.is_some_and(|d| d.is_zero())) {
                return invalid(&format!("apps.{name}.{key}"), "must be greater than 0".into());
            }
        }
        Ok(())
    }

    /// `[static."/PREFIX"]`: valid prefixes that no configured app's
    /// context path takes, a directory each, printable `Cache-Control`.
    fn validate_statics(&self) -> Result<(), ConfigError> {
        let invalid = |prefix: &str, key: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: format!("static.\"{prefix}\"{key}"),
                reason,
            })
        };
        for (prefix, mount) in &self.statics {
            if !is_valid_static_prefix(prefix) {
                let reason = "must be \"/\" or path segments of letters, digits, '-', '_', '.' or '~', \
                              each after a \"/\", with no \"/\" at the end";
                return invalid(prefix, "", reason.into());
            }
            if let Some(app) = self.apps.keys().find(|app| self.context_path(app) == *prefix) {
                let reason = format!(
                    "app {app} is mounted at {prefix}: an app's context path and a static mount cannot be the same"
                );
                return invalid(prefix, "", reason);
            }
            if mount.dir.as_os_str().is_empty() {
                return invalid(prefix, ".dir", "must be a directory, not empty".into());
            }
            if !is_valid_header_value(&mount.cache_control) {
                return invalid(prefix, ".cache_control", "must be printable ASCII".into());
            }
        }
        Ok(())
    }
}

fn is_valid_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// `/`, or `/` + segment, repeated: letters, digits, `-_.~`, not only dots.
pub(super) fn is_valid_static_prefix(prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let Some(rest) = prefix.strip_prefix('/') else {
        return false;
    };
    rest.split('/').all(|segment| {
        segment.chars().any(|c| c != '.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
    })
}

/// `[admin.manager]`: a user that HTTP Basic can carry, one password source.
fn validate_manager(manager: &super::ManagerConfig) -> Result<(), ConfigError> {
    let invalid = |key: &str, reason: &str| {
        Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if let Some(user) = &manager.user
        && (user.is_empty() || user.contains(':') || user.chars().any(char::is_control))
    {
        return invalid(
            "admin.manager.user",
            "must be a non-empty name without ':' or control characters",
        );
    }
    if manager.password.is_some() && manager.password_file.is_some() {
        return invalid("admin.manager.password", "set password or password_file, not both");
    }
    if let Some(password) = &manager.password
        && password.len() < 16
    {
        return invalid("admin.manager.password", "must be at least 16 characters long");
    }
    Ok(())
}

/// The most worker threads an app may have of its own.
const MAX_APP_THREADS: usize = 256;

/// `true` for a context path Crabcat can mount: `/` or `/` and one
/// segment of `[A-Za-z0-9._-]` (not only dots).
pub fn is_valid_context_path(path: &str) -> bool {
    match path.strip_prefix('/') {
        Some("") => true,
        Some(segment) => {
            segment.chars().any(|c| c != '.')
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        }
        None => false,
    }
}
