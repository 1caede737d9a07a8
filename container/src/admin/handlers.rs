//! Admin API handlers. Errors become responses in one place: [`AdminError`].

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

use super::AdminState;
use crate::deploy;
use crate::lifecycle::{AppState, AppStatus, ManagerError, Outcome, chain};
use crate::metrics::AppFigures;

/// An admin call that did not succeed.
pub struct AdminError(ManagerError);

impl From<ManagerError> for AdminError {
    fn from(error: ManagerError) -> Self {
        AdminError(error)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            ManagerError::UnknownApp(_) => StatusCode::NOT_FOUND,
            ManagerError::InvalidName { .. } | ManagerError::Refused(_) => StatusCode::BAD_REQUEST,
            ManagerError::Conflict(_) => StatusCode::CONFLICT,
            ManagerError::Io { .. } | ManagerError::Lifecycle(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(serde_json::json!({ "error": chain(&self.0) }))).into_response()
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
    /// Images loaded for this app that are not the running one.
    images_kept_by_reloads: u64,
}

fn view(state: &AdminState, status: AppStatus) -> AppView {
    let slot = state.manager.slot(&status.name);
    let running = u64::from(status.state == AppState::Running);
    AppView {
        version: status.module.as_ref().map(|m| m.version.clone()),
        requests_served: slot.as_ref().map_or(0, |s| s.requests_served()),
        requests_in_flight: slot.as_ref().map_or(0, |s| s.in_flight()),
        images_kept_by_reloads: status.images.saturating_sub(running),
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

fn valid_name(name: &str) -> Result<(), AdminError> {
    deploy::validate_name(name).map_err(|reason| {
        AdminError(ManagerError::InvalidName {
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
    Json(state.manager.apps().into_values().map(|s| view(&state, s)).collect())
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
    Ok(Json(view(&state, status)))
}

/// `PUT /apps/{name}` with the library as the body: checked, initialised
/// and only then renamed into the deploy directory; deploys a new app or
/// reloads a running one. A refused module leaves the running version (or
/// no app) in place; the error is reported.
pub async fn upload(
    State(state): State<Arc<AdminState>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    valid_name(&name)?;
    let dir = state.manager.deploy_dir();
    let upload = dir.join(format!(
        ".{}.upload-{:016x}",
        deploy::file_name(&name),
        rand::random::<u64>()
    ));
    tokio::fs::write(&upload, &body)
        .await
        .map_err(|source| ManagerError::Io {
            path: upload.clone(),
            source,
        })?;
    let result = state.manager.install(&name, &upload).await;
    let _ = std::fs::remove_file(&upload); // still there unless it was installed
    let outcome = result?;
    let status = if outcome == Outcome::Deployed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, done(&state, &name, outcome)).into_response())
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
    Ok(done(&state, &name, outcome))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let apps = state.manager.apps();
    let figures = apps.values().map(|s| AppFigures {
        app: &s.name,
        state: s.state.name(),
        in_flight: state.manager.slot(&s.name).map_or(0, |slot| slot.in_flight()),
        reloads: s.reloads,
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
