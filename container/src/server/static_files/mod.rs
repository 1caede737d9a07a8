//! Static files: an app's `static_dir` under `<context path>/static/`, and
//! `[static."/PREFIX"]` directories mounted with no module.
//!
//! tower-http's `ServeDir` serves the file: `Content-Type` by extension,
//! `Last-Modified` and `If-Modified-Since`, one `Range`, `HEAD`, the
//! precompressed `.br`/`.gz` variant the client accepts, `index.html`,
//! streamed from disk in 64 KiB reads, never a directory listing. This
//! module adds what it lacks: [`path`] keeps requests inside the directory
//! (traversal, odd bytes, symlinks out), [`validators`] gives a weak
//! `ETag` and `If-None-Match`, and every answer gets the configured
//! `Cache-Control`, `Vary: Accept-Encoding` and `X-Content-Type-Options:
//! nosniff`.

mod path;
mod small;
mod validators;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::header::{
    CACHE_CONTROL, ETAG, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, LOCATION, RANGE, VARY, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderValue, Method, StatusCode};
use tower_http::services::ServeDir;

use super::dispatch::Reject;
use crate::config::StaticConfig;
use crate::lifecycle::{StaticRoot, StaticRootError};
use crate::metrics::{AppMetrics, Metrics};

/// A directory mounted under a path prefix with no module.
pub struct Mount {
    /// `/docs`, or empty for `/`.
    prefix: Box<str>,
    /// Its name in metrics and the access log: `static:/docs`.
    pub label: Arc<str>,
    /// The directory.
    pub root: Arc<StaticRoot>,
    metrics: OnceLock<AppMetrics>,
}

impl Mount {
    /// Its metric handles (created on first use).
    pub fn metrics(&self, metrics: &Metrics) -> &AppMetrics {
        self.metrics.get_or_init(|| metrics.app(&self.label))
    }

    /// The length of its prefix: what to strip from a request path.
    pub fn prefix_len(&self) -> usize {
        self.prefix.len()
    }

    /// Whether `path` is the prefix itself, with no slash after it.
    pub fn is_bare(&self, path: &str) -> bool {
        !self.prefix.is_empty() && path.len() == self.prefix.len()
    }
}

/// Every `[static]` mount, longest prefix first. Fixed at start.
#[derive(Default)]
pub struct Mounts(Vec<Arc<Mount>>);

impl Mounts {
    /// Opens the directory of every mount of `config`.
    ///
    /// # Errors
    /// The first directory that cannot be served.
    pub fn open(config: &BTreeMap<String, StaticConfig>) -> Result<Self, StaticRootError> {
        let mut mounts = Vec::with_capacity(config.len());
        for (prefix, mount) in config {
            let root = StaticRoot::open(&mount.dir, &mount.cache_control)?;
            tracing::info!(prefix, dir = %root.dir.display(), "serving static files");
            mounts.push(Arc::new(Mount {
                prefix: prefix.trim_end_matches('/').into(),
                label: format!("static:{prefix}").into(),
                root: Arc::new(root),
                metrics: OnceLock::new(),
            }));
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        Ok(Mounts(mounts))
    }

    /// The mount `path` belongs to, unless an app's context path of
    /// `app_len` bytes (`None`: no app) matches at least as much of it:
    /// the longest prefix wins, and an app wins a tie. No mounts, no work.
    pub fn find(&self, path: &str, app_len: Option<usize>) -> Option<&Arc<Mount>> {
        let mount = self.0.iter().find(|m| {
            path.strip_prefix(&*m.prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })?;
        match app_len {
            Some(app_len) if app_len >= mount.prefix.len() => None,
            _ => Some(mount),
        }
    }
}

/// Serves `request` from `root`; its path minus the first `strip` bytes
/// (the mount's prefix) names the file.
///
/// # Errors
/// A [`Reject`]: `400` for a path that tries to leave the directory, `404`
/// for no such file (or a symlink out of the directory), `405` for a method
/// other than `GET` and `HEAD`.
pub async fn serve(root: &StaticRoot, strip: usize, request: Request) -> Result<Response, Reject> {
    let (mut parts, _body) = request.into_parts();
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(Reject::MethodNotAllowed("GET, HEAD".to_owned()));
    }
    let uri = parts.uri.clone(); // cheap: shared bytes
    let path = uri.path();
    let (prefix, relative) = path.split_at(strip);
    let file = path::file_path(relative).ok_or(Reject::BadPath)?;
    let directory = relative.ends_with('/');
    let candidates = path::Candidates::new(file, directory, &parts.headers);
    let plain = !directory
        && [RANGE, IF_RANGE, IF_UNMODIFIED_SINCE]
            .iter()
            .all(|h| !parts.headers.contains_key(h));
    let dir = root.dir.clone();
    let looked = tokio::task::spawn_blocking(move || (small::look(&dir, &candidates, plain), candidates)).await;
    // A check that cannot run refuses the request.
    let (looked, candidates) = looked.map_err(|_| Reject::FileError)?;
    let conditions = validators::Conditions::take(&mut parts.headers);
    let (head, body) = match looked {
        small::Looked::Escape => {
            tracing::warn!(path, "refused: resolves outside its static directory (a symlink)");
            return Err(Reject::NotFound);
        }
        small::Looked::Small { bytes, modified } => {
            let head = parts.method == Method::HEAD;
            small::response(candidates.file(), bytes, modified, head).into_parts()
        }
        small::Looked::Other => serve_dir(root, prefix, relative, parts).await?,
    };
    let etag = validators::etag(&head.headers);
    let not_modified = conditions.not_modified(etag.as_ref(), head.headers.get(LAST_MODIFIED));
    let mut response = match not_modified && head.status != StatusCode::PRECONDITION_FAILED {
        true => not_modified_response(&head.headers),
        false => Response::from_parts(head, body),
    };
    add_headers(response.headers_mut(), etag, root.cache_control.as_ref());
    Ok(response)
}

/// Serves the file with `ServeDir` (the request's conditional headers taken out).
async fn serve_dir(
    root: &StaticRoot,
    prefix: &str,
    relative: &str,
    mut parts: http::request::Parts,
) -> Result<(http::response::Parts, Body), Reject> {
    let prefix = prefix.to_owned();
    let target = match parts.uri.query() {
        Some(query) => format!("{relative}?{query}"),
        None => relative.to_owned(),
    };
    parts.uri = target.parse().map_err(|_| Reject::BadPath)?;
    let request = Request::from_parts(parts, Body::empty());
    let served = ServeDir::new(&root.dir)
        .precompressed_br()
        .precompressed_gzip()
        .try_call(request)
        .await;
    let response = served.map_err(|error| {
        tracing::error!(dir = %root.dir.display(), %error, "cannot read a static file");
        Reject::FileError
    })?;
    let (head, body) = response.into_parts();
    match head.status {
        StatusCode::NOT_FOUND => return Err(Reject::NotFound),
        // A directory without its slash: ServeDir's location lacks the prefix.
        StatusCode::TEMPORARY_REDIRECT => {
            let location = head.headers.get(LOCATION).and_then(|l| l.to_str().ok()).unwrap_or("/");
            return Err(Reject::AddSlash(format!("{prefix}{location}")));
        }
        _ => {}
    }
    Ok((head, Body::new(body)))
}

/// A `304` with the validators of the full response (whose file is
/// closed without a byte read).
fn not_modified_response(full: &http::HeaderMap) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    if let Some(date) = full.get(LAST_MODIFIED) {
        response.headers_mut().insert(LAST_MODIFIED, date.clone());
    }
    response
}

fn add_headers(headers: &mut http::HeaderMap, etag: Option<HeaderValue>, cache_control: Option<&HeaderValue>) {
    if let Some(etag) = etag {
        headers.insert(ETAG, etag);
    }
    if let Some(cache_control) = cache_control {
        headers.insert(CACHE_CONTROL, cache_control.clone());
    }
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}
