//! `crabcat-app.toml`: what a bundle says about its app. Every value is a
//! default that the operator's `[apps.NAME]` configuration overrides.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The descriptor's file name, at the root of the bundle and of an app crate.
pub const DESCRIPTOR: &str = "crabcat-app.toml";

/// The parsed descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// The app name; must be the name the bundle is deployed under.
    pub name: String,
    /// The app's version, for people (the module reports its own too).
    pub version: String,
    /// Where the app is mounted unless `[apps.NAME] context_path` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_path: Option<String>,
    /// The datasources the app wants (the first is its default), used when
    /// the configuration has no `[apps.NAME]` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasources: Option<Vec<String>>,
    /// Session defaults.
    #[serde(default, skip_serializing_if = "SessionDefaults::is_empty")]
    pub session: SessionDefaults,
}

/// `[session]`: humantime durations such as `"30m"` or `"8h"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionDefaults {
    /// A session unused for this long ends.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// A session ends this long after it began, used or not.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<Duration>,
}

impl SessionDefaults {
    fn is_empty(&self) -> bool {
        self.idle_timeout.is_none() && self.max_lifetime.is_none()
    }
}

impl Descriptor {
    /// Parses and checks a descriptor.
    ///
    /// # Errors
    /// The reason, for an error message: bad TOML, an unknown key, a bad
    /// name, an empty version, a bad context path or datasource list, a
    /// zero session duration.
    pub fn parse(text: &str) -> Result<Descriptor, String> {
        let descriptor: Descriptor = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        descriptor.check()?;
        Ok(descriptor)
    }

    fn check(&self) -> Result<(), String> {
        super::super::validate_name(&self.name).map_err(|reason| format!("name {:?}: {reason}", self.name))?;
        if self.version.trim().is_empty() {
            return Err("version must not be empty".into());
        }
        if let Some(path) = &self.context_path
            && !is_context_path(path)
        {
            return Err(format!(
                "context_path {path:?} must be \"/\" or \"/\" followed by one path segment of letters, digits, '-', '_' or '.'"
            ));
        }
        if self
            .datasources
            .as_ref()
            .is_some_and(|d| d.iter().any(String::is_empty))
        {
            return Err("datasources must be names, not empty".into());
        }
        let zero = [
            ("idle_timeout", self.session.idle_timeout),
            ("max_lifetime", self.session.max_lifetime),
        ]
        .into_iter()
        .find(|(_, d)| d.is_some_and(|d| d.is_zero()));
        if let Some((key, _)) = zero {
            return Err(format!("session.{key} must be greater than 0"));
        }
        Ok(())
    }

    /// The descriptor as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a descriptor serialises")
    }
}

/// A TOML error in one line: the message and the line it is about.
pub(crate) fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let Some(span) = error.span() else {
        return error.message().to_owned();
    };
    let number = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let line = text.lines().nth(number - 1).unwrap_or_default().trim();
    format!("{} (line {number}: {line})", error.message())
}

/// The rule of `[apps.NAME] context_path` (the config checks its own).
fn is_context_path(path: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_descriptor_parses_and_round_trips() {
        let text = r#"
            name = "shop"
            version = "1.2.0"
            context_path = "/store"
            datasources = ["default", "reports"]
            [session]
            idle_timeout = "30m"
            max_lifetime = "8h"
        "#;
        let d = Descriptor::parse(text).unwrap();
        assert_eq!(d.context_path.as_deref(), Some("/store"));
        assert_eq!(d.session.idle_timeout, Some(Duration::from_secs(1800)));
        assert_eq!(d.session.max_lifetime, Some(Duration::from_secs(8 * 3600)));
        assert_eq!(Descriptor::parse(&d.to_toml()).unwrap(), d);
    }

    #[test]
    fn bad_descriptors_say_why() {
        let cases = [
            ("version = \"1\"", "name"),
            ("name = \"a b\"\nversion = \"1\"", "letters, digits"),
            ("name = \"a\"\nversion = \"\"", "version"),
            ("name = \"a\"\nversion = \"1\"\ncontext_path = \"x\"", "context_path"),
            ("name = \"a\"\nversion = \"1\"\ncolour = \"red\"", "unknown field"),
            (
                "name = \"a\"\nversion = \"1\"\n[session]\nidle_timeout = \"soon\"",
                "idle_timeout",
            ),
            (
                "name = \"a\"\nversion = \"1\"\n[session]\nmax_lifetime = \"0s\"",
                "max_lifetime",
            ),
        ];
        for (text, needle) in cases {
            let error = Descriptor::parse(text).unwrap_err();
            assert!(error.contains(needle), "{text:?}: {error}");
        }
    }
}
