//! `GET /api/audit`: the audit log, oldest first (the page's Audit tab).

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// `2h` (that long ago) or an RFC 3339 time.
    since: Option<String>,
    limit: Option<usize>,
}

pub async fn list(State(state): State<AppState>, Query(q): Query<AuditQuery>) -> Result<Json<Value>, ApiError> {
    let since = q.since.as_deref().map(|v| super::runs::parse_time("since", v)).transpose()?;
    let limit = q.limit.unwrap_or(500).clamp(1, 5000);
    let entries = state.store.audit_log(since, limit).await.map_err(|e| ApiError::backend("audit log", e))?;
    Ok(Json(json!({ "entries": entries })))
}
