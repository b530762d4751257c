//! Operators acting on runs: `POST /api/runs/{id}/rerun`,
//! `POST /api/runs/{id}/cancel` (both behind the token), and
//! `GET /api/messages/{id}/history`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use relflow_engine::control::{self, ControlError};
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;

/// Who made a request, as the history records it. One shared token names
/// nobody in particular.
const CALLER: &str = "http (token)";

/// The read-only routes.
pub fn reads() -> Router<AppState> {
    Router::new().route("/api/messages/{id}/history", get(history))
}

fn api_error(e: ControlError) -> ApiError {
    match e {
        ControlError::NoSuchRun(id) => {
            ApiError::not_found(format!("no run with id {id:?}; list runs with GET /api/runs"))
        }
        ControlError::Store(relflow_store::StoreError::Ambiguous(p)) => {
            ApiError::bad_request(format!("run id prefix {p:?} matches more than one run; give more characters"))
        }
        e @ ControlError::NotRunning { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        e @ ControlError::BadMessage(..) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        e @ ControlError::Queue(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        ControlError::Store(e) => ApiError::backend("run store", e),
    }
}

pub(crate) async fn rerun(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = control::rerun(state.store.as_ref(), &state.sink, &id, CALLER).await.map_err(api_error)?;
    let body = json!({
        "rerun_of": req.run_id, "message_id": req.message_id, "rule": req.rule, "request": req.id,
        "history_url": format!("/api/messages/{}/history", req.message_id),
    });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (req, new) = control::cancel(state.store.as_ref(), &id, CALLER).await.map_err(api_error)?;
    let body = json!({"run_id": req.run_id, "cancel_requested": true, "already_requested": !new});
    Ok((StatusCode::ACCEPTED, Json(body)))
}

async fn history(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let entries = control::history(state.store.as_ref(), &id).await.map_err(api_error)?;
    if entries.is_empty() {
        return Err(ApiError::not_found(format!("no runs or history for message {id:?}")));
    }
    Ok(Json(json!({"message_id": id, "history": entries})))
}
