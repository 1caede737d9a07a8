//! The operations console: a page on the admin listener (`GET /console`)
//! that shows every app and acts on it through the admin API, and the one
//! data call it adds (`GET /console/data`: errors, the process' memory and
//! a short history per app for the charts).
//!
//! The page and its assets are compiled into the binary and hold no data,
//! so they need no token; the script asks for the token once, keeps it in
//! the tab's `sessionStorage` and sends it as the bearer header on every
//! call (no cookie: nothing for a cross-site request to ride on). A strict
//! `Content-Security-Policy` allows only the console's own script and
//! style; the script builds the page with `textContent`, never markup, so
//! what apps report is shown as text.

mod assets;
mod history;
mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;

use super::AdminState;
use history::{History, KEEP, Point, SAMPLE_EVERY};
pub use status::status_table;

/// The page and its assets: no token needed.
pub fn pages() -> Router<Arc<AdminState>> {
    assets::routes()
}

/// `GET /console/data`, to be put behind the token.
pub fn data_routes() -> Router<Arc<AdminState>> {
    let history = Arc::new(History::default());
    Router::new().route(
        "/console/data",
        get(move |state: State<Arc<AdminState>>| data(state, Arc::clone(&history))),
    )
}

/// What `GET /console/data` answers.
#[derive(Serialize)]
pub struct ConsoleData {
    container: ContainerView,
    apps: HashMap<String, AppFigures>,
}

/// The container as a whole.
#[derive(Serialize)]
struct ContainerView {
    version: &'static str,
    /// Resident set size of the whole process: the memory of every app is
    /// in it, and cannot be told apart (apps are libraries in one process).
    resident_bytes: Option<u64>,
    /// Library images loaded (never unloaded), over every app.
    images: u64,
    /// Address space they map.
    image_bytes: u64,
    /// Seconds between two points of history.
    sample_seconds: u64,
    /// Seconds of history kept.
    window_seconds: u64,
}

/// One app's figures beyond `GET /apps`.
#[derive(Serialize)]
struct AppFigures {
    /// Requests counted since the container started (across reloads).
    requests: u64,
    /// Of those, answered with a `5xx` status.
    errors: u64,
    /// The last minutes, oldest first.
    history: Vec<Point>,
}

/// `GET /console/data`: takes a reading for the history if the last is
/// old enough (the only time one is taken), then reports.
async fn data(State(state): State<Arc<AdminState>>, history: Arc<History>) -> Json<ConsoleData> {
    let tallies = state.metrics.tallies();
    history.sample(Instant::now(), SystemTime::now(), tallies.clone());
    let statuses = state.manager.apps();
    let apps = statuses
        .keys()
        .map(|name| {
            let tally = tallies.get(name).copied().unwrap_or_default();
            let figures = AppFigures {
                requests: tally.requests(),
                errors: tally.errors,
                history: history.points(name),
            };
            (name.clone(), figures)
        })
        .collect();
    let container = ContainerView {
        version: env!("CARGO_PKG_VERSION"),
        resident_bytes: crate::metrics::resident_bytes(),
        images: statuses.values().map(|s| s.images).sum(),
        image_bytes: statuses.values().map(|s| s.image_bytes).sum(),
        sample_seconds: SAMPLE_EVERY.as_secs(),
        window_seconds: SAMPLE_EVERY.as_secs() * KEEP as u64,
    };
    Json(ConsoleData { container, apps })
}
