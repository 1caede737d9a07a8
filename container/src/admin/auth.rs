//! The admin token: configured, or generated at start and written to a
//! file only its owner can read; compared in constant time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use subtle::ConstantTimeEq;

use super::AdminState;
use crate::config::AdminConfig;

/// Why no token could be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the admin token to {path}: {source}")]
pub struct TokenError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// The bearer token every admin call but `/health` must present.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl AdminToken {
    /// The configured token, or a new random one written to
    /// `config.token_file` (mode 0600).
    ///
    /// # Errors
    /// If a generated token cannot be written.
    pub fn resolve(config: &AdminConfig) -> Result<AdminToken, TokenError> {
        if let Some(token) = &config.token {
            return Ok(AdminToken(token.as_str().into()));
        }
        let token: String = rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect();
        write_private(&config.token_file, &token).map_err(|source| TokenError {
            path: config.token_file.clone(),
            source,
        })?;
        tracing::info!(
            file = %config.token_file.display(),
            "generated an admin token (set admin.token or CRABCAT_ADMIN_TOKEN to choose one)"
        );
        Ok(AdminToken(token.into()))
    }

    /// The token itself (the manager text API's default password).
    pub(super) fn secret(&self) -> &str {
        &self.0
    }

    /// `true` if `candidate` is the token (constant time in its content).
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{token}")
}

/// Middleware: `401` unless `Authorization: Bearer <token>` is right, and
/// `429` without looking at the token while the client's address is
/// blocked for failing too often ([`super::backoff`]).
pub async fn require_token(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let (address, now) = (client.ip(), Instant::now());
    if let Some(left) = state.backoff.blocked(address, now) {
        tracing::debug!(%client, "admin call refused: address blocked after failed tokens");
        return blocked(left);
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|token| state.token.matches(token.trim())) {
        state.backoff.succeeded(address);
        return next.run(request).await;
    }
    let (failures, block) = state.backoff.failed(address, now);
    let path = request.uri().path();
    match block {
        Some(block) => tracing::warn!(
            %client,
            path,
            failures,
            block_secs = block.as_secs(),
            "admin call refused: missing or wrong token; address blocked"
        ),
        None => tracing::warn!(%client, path, failures, "admin call refused: missing or wrong token"),
    }
    let body = axum::Json(serde_json::json!({"error": "missing or wrong bearer token"}));
    (StatusCode::UNAUTHORIZED, [(WWW_AUTHENTICATE, "Bearer")], body).into_response()
}

fn blocked(left: std::time::Duration) -> Response {
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let body = axum::Json(serde_json::json!({
        "error": format!("too many wrong tokens from this address; retry in {seconds} s")
    }));
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(RETRY_AFTER, seconds.to_string())],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_private_and_compared_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let config = AdminConfig {
            token_file: dir.path().join("sub/admin.token"),
            ..AdminConfig::default()
        };
        let token = AdminToken::resolve(&config).unwrap();
        let written = std::fs::read_to_string(&config.token_file).unwrap();
        assert!(token.matches(written.trim()));
        assert!(!token.matches(&written.trim()[1..]));
        assert!(!token.matches(""));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&config.token_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = AdminToken::resolve(&config).unwrap();
        assert!(!again.matches(written.trim()), "a new token each start");
    }
}
