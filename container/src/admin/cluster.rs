//! `GET /cluster`: what each node of the cluster runs.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::AdminState;
use super::handlers::AdminError;

/// `GET /cluster`: what each node of the cluster runs of each app.
pub async fn cluster(State(state): State<Arc<AdminState>>) -> Result<Json<serde_json::Value>, AdminError> {
    let cluster = state.cluster.as_ref().ok_or(AdminError::NotClustered)?;
    let nodes = cluster.nodes().await.map_err(|e| AdminError::Cluster(e.to_string()))?;
    Ok(Json(serde_json::json!({ "node": cluster.node(), "apps": nodes })))
}
