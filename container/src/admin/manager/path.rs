//! Context paths as Tomcat's `ContextName` reads them, and how they map to
//! Crabcat's apps: an existing app is found by its context path; a new one
//! is named after the path as Tomcat names its base files (`/` ↔ `ROOT`,
//! `/x` ↔ `x`). Crabcat mounts one path segment, so `/a/b` (Tomcat's
//! `a#b`) cannot be deployed here.

use std::collections::BTreeMap;

use super::messages;
use crate::config::{Config, ROOT_APP, is_valid_context_path};
use crate::deploy;
use crate::lifecycle::AppStatus;

/// A context path given as `path=` (Tomcat's `ContextName`), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextName {
    /// What Tomcat shows in its messages: `/` for the root context.
    display: String,
}

impl ContextName {
    /// Reads `path=` and `version=` as Tomcat's `validateContextName` does.
    ///
    /// # Errors
    /// The `FAIL` line: Tomcat's `invalidPath` for a missing or
    /// unnormalised path; for `version=` (parallel deployment, which
    /// Crabcat does not have), an `exception` line.
    pub fn parse(path: Option<&str>, version: Option<&str>) -> Result<ContextName, String> {
        let Some(path) = path else {
            return Err(messages::invalid_path(None));
        };
        // Tomcat: "Path should never be null, '/' or '/ROOT'".
        let path = if path == "/" || path == "/ROOT" { "" } else { path };
        if !path.is_empty() && !is_normalized(path) {
            return Err(messages::invalid_path(Some(path)));
        }
        let display = if path.is_empty() { "/" } else { path };
        if let Some(version) = version.filter(|v| !v.is_empty()) {
            return Err(messages::exception(&format!(
                "{display}##{version}: parallel deployment (version=) is not supported by Crabcat"
            )));
        }
        Ok(ContextName {
            display: display.to_owned(),
        })
    }

    /// The path as Tomcat's messages show it (`/` for the root).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The app mounted at this path, if any.
    pub fn find<'a>(&self, apps: &'a BTreeMap<String, AppStatus>) -> Option<&'a AppStatus> {
        apps.values().find(|app| app.context_path == self.display)
    }

    /// The name a new app at this path gets: the app configured at this
    /// path if one is, else `ROOT` for `/` and `x` for `/x`.
    ///
    /// # Errors
    /// The `FAIL` line: `invalidPath` for a path Crabcat cannot mount (more
    /// than one segment); an `exception` line for a segment that is not an
    /// app name, or a name configured at another path.
    pub fn new_app_name(&self, config: &Config) -> Result<String, String> {
        if let Some(name) = config.apps.keys().find(|n| config.context_path(n) == self.display) {
            return Ok(name.clone());
        }
        if !is_valid_context_path(&self.display) {
            return Err(messages::invalid_path(Some(&self.display)));
        }
        let name = match &self.display[1..] {
            "" => ROOT_APP,
            segment => segment,
        };
        if let Err(reason) = deploy::validate_name(name) {
            return Err(messages::exception(&format!("invalid app name {name:?}: {reason}")));
        }
        let configured = config.context_path(name);
        if configured != self.display {
            return Err(messages::exception(&format!(
                "app {name} is configured at context path {configured}"
            )));
        }
        Ok(name.to_owned())
    }
}

/// Tomcat's `path.equals(RequestUtil.normalize(path))`: a leading `/`, no
/// `\`, no empty, `.` or `..` segment except a trailing `/`.
fn is_normalized(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    !path.contains('\\')
        && segments
            .iter()
            .enumerate()
            .all(|(i, s)| !matches!(*s, "." | "..") && (!s.is_empty() || i == last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_as_tomcat_reads_them() {
        let display = |p: &str| ContextName::parse(Some(p), None).map(|c| c.display);
        assert_eq!(display("/"), Ok("/".into()));
        assert_eq!(display("/ROOT"), Ok("/".into()));
        assert_eq!(display(""), Ok("/".into()));
        assert_eq!(display("/shop"), Ok("/shop".into()));
        assert_eq!(display("/a/b"), Ok("/a/b".into()));
        for bad in ["shop", "/a//b", "/a/./b", "/a/../b", "/..", "/a\\b"] {
            assert_eq!(
                display(bad),
                Err(format!("FAIL - Invalid context path [{bad}] was specified")),
                "{bad}"
            );
        }
        assert_eq!(
            ContextName::parse(None, None),
            Err("FAIL - Invalid context path [null] was specified".into())
        );
        assert!(
            ContextName::parse(Some("/x"), Some("2"))
                .unwrap_err()
                .starts_with("FAIL - ")
        );
    }

    #[test]
    fn new_apps_are_named_after_their_path() {
        let config: Config = toml::from_str("[apps.shop]\ncontext_path = \"/store\"\n").unwrap();
        let name = |p: &str| ContextName::parse(Some(p), None).unwrap().new_app_name(&config);
        assert_eq!(name("/"), Ok("ROOT".into()));
        assert_eq!(name("/hello"), Ok("hello".into()));
        assert_eq!(name("/store"), Ok("shop".into()));
        assert_eq!(
            name("/a/b"),
            Err("FAIL - Invalid context path [/a/b] was specified".into())
        );
        assert!(name("/shop").unwrap_err().contains("configured at context path /store"));
        assert!(
            name("/a.b")
                .unwrap_err()
                .starts_with("FAIL - Encountered exception [invalid app name")
        );
    }
}
