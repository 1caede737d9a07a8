//! HTTP Basic authentication of the text API, as Tomcat's manager
//! `login-config` asks for it (`BASIC`, realm `Tomcat Manager
//! Application`). User and password are compared in constant time; wrong
//! credentials count in the admin API's per-address backoff, shared with
//! wrong bearer tokens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::StatusCode;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use subtle::ConstantTimeEq;

use super::super::{AdminState, AdminToken};
use crate::config::ManagerConfig;

/// The realm of Tomcat's manager application (`webapps/manager/WEB-INF/web.xml`).
pub const REALM: &str = "Tomcat Manager Application";

/// Why the manager password could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read admin.manager.password_file {path}: {source}")]
pub struct PasswordError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// The one user of the text API and its password.
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// The configured credentials; `None` while `admin.manager.user` is
    /// unset. The password is `password`, the first line of
    /// `password_file`, or else the admin token.
    ///
    /// # Errors
    /// If `password_file` cannot be read.
    pub fn resolve(config: &ManagerConfig, token: &AdminToken) -> Result<Option<Credentials>, PasswordError> {
        let Some(user) = config.user.clone() else {
            return Ok(None);
        };
        let password = match (&config.password, &config.password_file) {
            (Some(password), _) => password.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|text| text.lines().next().unwrap_or("").to_owned())
                .map_err(|source| PasswordError {
                    path: path.clone(),
                    source,
                })?,
            (None, None) => token.secret().to_owned(),
        };
        Ok(Some(Credentials { user, password }))
    }

    /// `true` if `user` and `password` are these (constant time in both).
    fn matches(&self, user: &str, password: &str) -> bool {
        let user_ok = self.user.as_bytes().ct_eq(user.as_bytes());
        let password_ok = self.password.as_bytes().ct_eq(password.as_bytes());
        (user_ok & password_ok).into()
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic(request: &Request) -> Option<(String, String)> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Middleware: `401` with `WWW-Authenticate: Basic` unless the request
/// carries the manager user and password (always, while no user is
/// configured); `429` without looking while the address is blocked.
pub async fn require_basic(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let (address, now) = (client.ip(), Instant::now());
    if let Some(left) = state.backoff.blocked(address, now) {
        tracing::debug!(%client, "manager call refused: address blocked after failed logins");
        let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let body = format!("too many failed logins from this address; retry in {seconds} s\n");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, seconds.to_string())],
            body,
        )
            .into_response();
    }
    let credentials = state.manager_text.as_ref().and_then(|t| t.credentials.as_ref());
    let presented = basic(&request);
    if let (Some(credentials), Some((user, password))) = (credentials, &presented)
        && credentials.matches(user, password)
    {
        state.backoff.succeeded(address);
        return next.run(request).await;
    }
    let path = request.uri().path();
    if credentials.is_none() {
        tracing::warn!(%client, path, "manager call refused: admin.manager.user is not configured");
    } else if presented.is_some() {
        let (failures, block) = state.backoff.failed(address, now);
        let block_secs = block.map(|b| b.as_secs());
        tracing::warn!(%client, path, failures, ?block_secs, "manager call refused: wrong user or password");
    }
    unauthorized()
}

/// Tomcat's answer to a request without the right credentials: `401`, the
/// Basic challenge, and an HTML page in the spirit of the manager's
/// `401.jsp` that says where the credentials are configured.
fn unauthorized() -> Response {
    let challenge = format!("Basic realm=\"{REALM}\"");
    (
        StatusCode::UNAUTHORIZED,
        [
            (WWW_AUTHENTICATE, challenge.as_str()),
            (CONTENT_TYPE, "text/html;charset=utf-8"),
        ],
        UNAUTHORIZED_PAGE,
    )
        .into_response()
}

const UNAUTHORIZED_PAGE: &str = r#"<!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html>
 <head>
  <title>401 Unauthorized</title>
 </head>
 <body>
   <h1>401 Unauthorized</h1>
   <p>
    You are not authorized to view this page. If you have not changed
    any configuration files, please examine the <tt>[admin.manager]</tt>
    section of <tt>crabcat.toml</tt>. That section must name the user
    (<tt>user</tt>) and may set its password (<tt>password</tt> or
    <tt>password_file</tt>; the admin token otherwise) to let you use the
    manager text interface.
   </p>
 </body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> Request {
        Request::builder()
            .header(AUTHORIZATION, value)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn basic_headers_are_decoded() {
        // "tomcat:s3cret:x" — the password may contain ':'.
        let request = with_auth("Basic dG9tY2F0OnMzY3JldDp4");
        assert_eq!(basic(&request), Some(("tomcat".into(), "s3cret:x".into())));
        assert_eq!(
            basic(&with_auth("basic dG9tY2F0OnM=")),
            Some(("tomcat".into(), "s".into()))
        );
        assert_eq!(basic(&with_auth("Bearer dG9tY2F0OnM=")), None);
        assert_eq!(basic(&with_auth("Basic !!!")), None);
        assert_eq!(basic(&with_auth("Basic dG9tY2F0")), None, "no ':'");
    }

    #[test]
    fn both_user_and_password_must_match() {
        let credentials = Credentials {
            user: "deployer".into(),
            password: "a-password-of-16+".into(),
        };
        assert!(credentials.matches("deployer", "a-password-of-16+"));
        assert!(!credentials.matches("deployer", "a-password-of-16"));
        assert!(!credentials.matches("admin", "a-password-of-16+"));
        assert!(!credentials.matches("", ""));
    }
}
