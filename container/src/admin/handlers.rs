//! Admin API handlers. Errors become responses in one place: [`AdminError`].

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use super::{AdminState, MAX_CONCURRENT_UPLOADS};
use std::collections::BTreeMap;

use super::sessions::session_counts;
use crate::deploy;
use crate::lifecycle::{AppState, AppStatus, ManagerError, Outcome, chain};
use crate::metrics::AppFigures;

/// An admin call that did not succeed.
pub enum AdminError {
    /// The lifecycle manager refused or failed.
    Manager(ManagerError),
    /// The upload is larger than `admin.max_upload_bytes`.
    UploadTooLarge(usize),
    /// As many uploads as allowed are being received.
    UploadsBusy,
    /// The upload's body could not be read.
    UploadBroken(axum::Error),
    /// Sessions are off (`sessions.datasource` is empty).
    SessionsOff,
    /// The session store failed.
    Sessions(String),
    /// The change was made here, but the cluster store failed.
    Cluster(String),
    /// This node is not in a cluster.
    NotClustered,
}

impl From<ManagerError> for AdminError {
    fn from(error: ManagerError) -> Self {
        AdminError::Manager(error)
    }
}

impl AdminError {
    /// The status and the message the client gets.
    pub(super) fn status_and_message(&self) -> (StatusCode, String) {
        match self {
            AdminError::Manager(error) => (manager_status(error), chain(error)),
            AdminError::UploadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the upload is larger than admin.max_upload_bytes ({limit} bytes)"),
            ),
            AdminError::UploadsBusy => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{MAX_CONCURRENT_UPLOADS} uploads are being received; retry shortly"),
            ),
            AdminError::UploadBroken(error) => (StatusCode::BAD_REQUEST, format!("reading the upload failed: {error}")),
            AdminError::SessionsOff => (
                StatusCode::NOT_FOUND,
                "sessions are off in this container (sessions.datasource is empty)".to_owned(),
            ),
            AdminError::Sessions(error) | AdminError::Cluster(error) => {
                (StatusCode::SERVICE_UNAVAILABLE, error.clone())
            }
            AdminError::NotClustered => (
                StatusCode::NOT_FOUND,
                "this container is not in a cluster (cluster.datasource is not set)".to_owned(),
            ),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, message) = self.status_and_message();
        let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn manager_status(error: &ManagerError) -> StatusCode {
    match error {
        ManagerError::UnknownApp(_) => StatusCode::NOT_FOUND,
        ManagerError::InvalidName { .. } | ManagerError::Refused(_) => StatusCode::BAD_REQUEST,
        ManagerError::Conflict(_) => StatusCode::CONFLICT,
        ManagerError::Io { .. } | ManagerError::Lifecycle(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// One app as the API shows it.
#[derive(Serialize)]
pub struct AppView {
    version: Option<String>,
    #[serde(flatten)]
    status: AppStatus,
    requests_served: u64,
    requests_in_flight: usize,
    /// Worker threads running the app's code without yielding (see
    /// `server.stall_timeout`): while not zero, the app gets `503`.
    stalled_threads: usize,
    /// Images loaded for this app that are not the running one.
    images_kept_by_reloads: u64,
    /// Its live HTTP sessions (absent when sessions are off, or the
    /// store could not be read, or in the answer to a change).
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions: Option<u64>,
}

fn view(state: &AdminState, status: AppStatus) -> AppView {
    view_with(state, status, None)
}

fn view_with(state: &AdminState, status: AppStatus, sessions: Option<&BTreeMap<String, u64>>) -> AppView {
    let slot = state.manager.slot(&status.name);
    let running = u64::from(status.state == AppState::Running);
    AppView {
        version: status.module.as_ref().map(|m| m.version.clone()),
        requests_served: slot.as_ref().map_or(0, |s| s.requests_served()),
        requests_in_flight: slot.as_ref().map_or(0, |s| s.in_flight()),
        stalled_threads: slot.as_ref().map_or(0, |s| s.watch.stalled()),
        images_kept_by_reloads: status.images.saturating_sub(running),
        sessions: sessions.map(|counts| counts.get(&status.name).copied().unwrap_or(0)),
        status,
    }
}

/// What a changing call answers.
#[derive(Serialize)]
pub struct Done {
    outcome: Outcome,
    app: Option<AppView>,
}

fn done(state: &AdminState, name: &str, outcome: Outcome) -> Json<Done> {
    let app = state.manager.apps().remove(name).map(|s| view(state, s));
    Json(Done { outcome, app })
}

pub(super) fn valid_name(name: &str) -> Result<(), AdminError> {
    deploy::validate_name(name).map_err(|reason| {
        AdminError::Manager(ManagerError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    })
}

/// `GET /health`: no authentication, for load balancers.
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Any other path.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": "no such endpoint" })),
    )
        .into_response()
}

/// `GET /apps`
pub async fn list(State(state): State<Arc<AdminState>>) -> Json<Vec<AppView>> {
    let sessions = session_counts(&state).await;
    let apps = state.manager.apps().into_values();
    Json(apps.map(|s| view_with(&state, s, sessions.as_ref())).collect())
}

/// `GET /apps/{name}`
pub async fn show(
    State(state): State<Arc<AdminState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<AppView>, AdminError> {
    valid_name(&name)?;
    let status = state
        .manager
        .apps()
        .remove(&name)
        .ok_or(ManagerError::UnknownApp(name))?;
    let sessions = session_counts(&state).await;
    Ok(Json(view_with(&state, status, sessions.as_ref())))
}

/// `PUT /apps/{name}` with the library as the body: streamed to a hidden
/// file in the deploy directory (never whole in memory, at most
/// `admin.max_upload_bytes`), checked, initialised and only then renamed
/// into place; deploys a new app or reloads a running one. A refused
/// module leaves the running version (or no app) in place; the error is
/// reported.
pub async fn upload(
    State(state): State<Arc<AdminState>>,
    UrlPath(name): UrlPath<String>,
    body: Body,
) -> Result<Response, AdminError> {
    valid_name(&name)?;
    let Ok(_receiving) = state.uploads.try_acquire() else {
        return Err(AdminError::UploadsBusy);
    };
    let dir = state.manager.deploy_dir();
    // Named for the app, not for a kind of file: a library or a bundle.
    let upload = dir.join(format!(".{name}.upload-{:016x}", rand::random::<u64>()));
    let received = receive(body, &upload, state.max_upload_bytes).await;
    let result = match received {
        Ok(()) => state.manager.install(&name, &upload).await.map_err(AdminError::from),
        Err(error) => Err(error),
    };
    let _ = std::fs::remove_file(&upload); // still there unless it was installed
    let outcome = result?;
    state
        .share_deploy(&name, "admin API")
        .await
        .map_err(AdminError::Cluster)?;
    let status = if outcome == Outcome::Deployed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, done(&state, &name, outcome)).into_response())
}

/// Writes `body` to `path` as it arrives, up to `limit` bytes.
pub(super) async fn receive(body: Body, path: &std::path::Path, limit: usize) -> Result<(), AdminError> {
    use tokio::io::AsyncWriteExt;
    let io = |source| {
        AdminError::Manager(ManagerError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    use http_body_util::BodyExt;
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut body = body;
    let mut written = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame.map_err(AdminError::UploadBroken)?.into_data() else {
            continue; // trailers
        };
        written += chunk.len();
        if written > limit {
            return Err(AdminError::UploadTooLarge(limit));
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok(())
}

/// `POST /apps/{name}/reload`: reloads from the file in the deploy directory.
pub async fn reload(
    State(state): State<Arc<AdminState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Done>, AdminError> {
    valid_name(&name)?;
    let outcome = state.manager.reload(&name, None, true).await?;
    Ok(done(&state, &name, outcome))
}

/// `POST /apps/{name}/stop`
pub async fn stop(
    State(state): State<Arc<AdminState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Done>, AdminError> {
    valid_name(&name)?;
    let outcome = state.manager.stop(&name).await?;
    Ok(done(&state, &name, outcome))
}

/// `POST /apps/{name}/start`
pub async fn start(
    State(state): State<Arc<AdminState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Done>, AdminError> {
    valid_name(&name)?;
    let outcome = state.manager.start(&name).await?;
    Ok(done(&state, &name, outcome))
}

/// `DELETE /apps/{name}`: undeploys and removes the file.
pub async fn undeploy(
    State(state): State<Arc<AdminState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Done>, AdminError> {
    valid_name(&name)?;
    let outcome = state.manager.undeploy(&name, true).await?;
    state
        .share_undeploy(&name, "admin API")
        .await
        .map_err(AdminError::Cluster)?;
    Ok(done(&state, &name, outcome))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let apps = state.manager.apps();
    let figures = apps.values().map(|s| {
        let slot = state.manager.slot(&s.name);
        AppFigures {
            app: &s.name,
            state: s.state.name(),
            in_flight: slot.as_ref().map_or(0, |slot| slot.in_flight()),
            reloads: s.reloads,
            stalled_threads: slot.as_ref().map_or(0, |slot| slot.watch.stalled()),
            stalls: slot.as_ref().map_or(0, |slot| slot.watch.stalls()),
        }
    });
    let pools = state.datasources.iter().map(|d| {
        let (size, idle) = d.usage();
        (d.name.as_str(), size, idle)
    });
    let text = state.metrics.render(figures, pools);
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}
