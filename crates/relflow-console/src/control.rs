//! Operators acting on runs: `POST /api/runs/{id}/rerun`,
//! `POST /api/runs/{id}/cancel`, `POST /api/runs/{id}/approve`,
//! `POST /api/runs/{id}/deny` (all behind a token), and
//! `GET /api/messages/{id}/history`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use relflow_engine::control::{self, ControlError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;

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
        e @ (ControlError::NotRunning { .. } | ControlError::NotAwaiting { .. }) => {
            ApiError::new(StatusCode::CONFLICT, e.to_string())
        }
        e @ ControlError::NotApprover { .. } => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
        e @ ControlError::BadMessage(..) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        e @ ControlError::Queue(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        ControlError::Store(e) => ApiError::backend("run store", e),
    }
}

pub(crate) async fn rerun(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = control::rerun(state.store.as_ref(), &state.sink, &id, &caller.name).await.map_err(api_error)?;
    let body = json!({
        "rerun_of": req.run_id, "message_id": req.message_id, "rule": req.rule, "request": req.id,
        "history_url": format!("/api/messages/{}/history", req.message_id),
    });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (req, new) = control::cancel(state.store.as_ref(), &id, &caller.name).await.map_err(api_error)?;
    let body = json!({"run_id": req.run_id, "cancel_requested": true, "already_requested": !new});
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// The caller may decide on run `id`: one of its rule's approvers.
async fn check_approver(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let run = state.store.get(id).await.map_err(|e| api_error(e.into()))?;
    let run = run.ok_or_else(|| api_error(ControlError::NoSuchRun(id.to_owned())))?;
    let admin = caller.role == relflow_core::config::Role::Admin;
    control::check_approver(&state.config, &run.record.rule, &caller.name, &caller.groups, admin).map_err(api_error)
}

pub(crate) async fn approve(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_approver(&state, &caller, &id).await?;
    let req = control::approve(state.store.as_ref(), &state.sink, &id, &caller.name).await.map_err(api_error)?;
    let body = json!({
        "run_id": req.run_id, "status": "approved", "approved_by": req.by, "message_id": req.message_id,
        "rule": req.rule, "history_url": format!("/api/messages/{}/history", req.message_id),
    });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// `POST /api/runs/{id}/deny`, with an optional `{"reason": "..."}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DenyBody {
    reason: Option<String>,
}

pub(crate) async fn deny(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: DenyBody = if body.iter().all(u8::is_ascii_whitespace) {
        DenyBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is {{\"reason\": \"...\"}} or empty: {e}")))?
    };
    check_approver(&state, &caller, &id).await?;
    let req =
        control::deny(state.store.as_ref(), &id, &caller.name, body.reason.as_deref()).await.map_err(api_error)?;
    Ok(Json(json!({"run_id": req.run_id, "status": "denied", "denied_by": req.by, "reason": body.reason})))
}

async fn history(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let entries = control::history(state.store.as_ref(), &id).await.map_err(api_error)?;
    if entries.is_empty() {
        return Err(ApiError::not_found(format!("no runs or history for message {id:?}")));
    }
    Ok(Json(json!({"message_id": id, "history": entries})))
}
