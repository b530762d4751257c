//! The run endpoints: list, show, and the runs-per-hour chart.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use relflow_store::{Cursor, RunDetail, RunFilter, RunStatus, COUNT_CAP, MAX_OFFSET};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;

/// Most runs one page may hold.
const MAX_LIMIT: usize = 500;

/// `GET /api/runs`, `/api/runs/{id}` (with its log), `/api/stats/runs-per-hour`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(show_run))
        .route("/api/runs/{id}/log", get(super::logs::log_text))
        .route("/api/runs/{id}/log/stream", get(super::logs::stream_log))
        .route("/api/stats/runs-per-hour", get(runs_per_hour))
}

/// Reads `2h`/`3d` (that long ago) or an RFC 3339 time.
pub(crate) fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = humantime::parse_duration(value).map_err(|_| {
        ApiError::bad_request(format!(
            "{name}={value:?}: give an RFC 3339 time (2024-05-01T12:00:00Z) or a duration ago (2h, 3d)"
        ))
    })?;
    relflow_core::ago(ago).ok_or_else(|| ApiError::bad_request(format!("{name}={value:?}: too long ago")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    /// A topic or a topic pattern (`*`, `#`).
    topic: Option<String>,
    rule: Option<String>,
    status: Option<String>,
    message_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Words the message must have (whole values or their beginnings).
    search: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

async fn list_runs(
    State(state): State<AppState>,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| {
        ApiError::bad_request(format!(
            "{e}; filters are topic, rule, status, message_id, since, until, search, limit, offset, cursor"
        ))
    })?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown status {s:?}; use one of: {}",
                RunStatus::ALL.map(RunStatus::as_str).join(", ")
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!("limit must be 1..={MAX_LIMIT}; page with cursor")));
    }
    let offset = q.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::bad_request(format!(
            "offset must be at most {MAX_OFFSET}; page on with cursor (each page's `next`)"
        )));
    }
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(Cursor::parse(c).ok_or_else(|| {
            ApiError::bad_request(format!("cursor={c:?} is not a cursor; pass a page's `next` as it is"))
        })?),
    };
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = RunFilter {
        topic: non_empty(q.topic),
        rule: non_empty(q.rule),
        status,
        message_id: non_empty(q.message_id),
        since: non_empty(q.since).map(|v| parse_time("since", &v)).transpose()?,
        until: non_empty(q.until).map(|v| parse_time("until", &v)).transpose()?,
        search: non_empty(q.search),
        limit,
        offset,
        cursor,
    };
    let runs = state.store.list(&filter).await.map_err(listing_error)?;
    let total = state.store.count(&filter).await.map_err(listing_error)?;
    // A full page may have more behind it; the last page has no `next`.
    let next = runs.last().filter(|_| runs.len() == limit).map(|r| Cursor::after(r).to_string());
    Ok(Json(json!({
        "runs": runs,
        "total": total.min(COUNT_CAP),
        "total_capped": total > COUNT_CAP,
        "limit": filter.limit,
        "offset": filter.offset,
        "next": next,
    })))
}

/// A filter the store refused (a bad topic pattern, a search with no
/// words) is the caller's mistake, in the store's words.
fn listing_error(e: relflow_store::StoreError) -> ApiError {
    match e {
        relflow_store::StoreError::BadFilter(why) => ApiError::bad_request(why),
        e => ApiError::backend("run store", e),
    }
}

/// A run by id or unique prefix, or a 404/400 that says what to do.
pub async fn find_run(state: &AppState, id: &str) -> Result<RunDetail, ApiError> {
    match state.store.get(id).await {
        Ok(Some(run)) => Ok(run),
        Ok(None) => Err(ApiError::not_found(format!("no run with id {id:?}; list runs with GET /api/runs"))),
        Err(relflow_store::StoreError::Ambiguous(p)) => {
            Err(ApiError::bad_request(format!("run id prefix {p:?} matches more than one run; give more characters")))
        }
        Err(e) => Err(ApiError::backend("run store", e)),
    }
}

async fn show_run(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let run = find_run(&state, &id).await?;
    let run = relflow_announce::view(state.store.as_ref(), run).await.map_err(|e| ApiError::backend("run store", e))?;
    let mut value = serde_json::to_value(&run).map_err(|e| ApiError::backend("run", e))?;
    if let Value::Object(map) = &mut value {
        // The log can be megabytes: it has its own endpoints.
        map.remove("log");
        map.insert("log_url".into(), format!("/api/runs/{}/log", run.run.record.id).into());
        map.insert("log_stream_url".into(), format!("/api/runs/{}/log/stream", run.run.record.id).into());
        let rerun_of = state.store.rerun_of(&run.run.record.id).await.map_err(|e| ApiError::backend("run store", e))?;
        map.insert("rerun_of".into(), rerun_of.into());
        // For the page's "time left": the rule's timeout as configured now.
        let timeout = state.config.rules.iter().find(|r| r.name == run.run.record.rule).map(|r| r.timeout.as_secs());
        map.insert("timeout_secs".into(), timeout.into());
        // A gated run: when its approval expires (the page's approve/deny buttons show while it waits).
        let expires =
            state.store.expires_at(&run.run.record.id).await.map_err(|e| ApiError::backend("run store", e))?;
        map.insert("approval_expires_at".into(), serde_json::to_value(expires).unwrap_or_default());
    }
    Ok(Json(value))
}

#[derive(Debug, Deserialize)]
struct SinceQuery {
    since: Option<String>,
}

async fn runs_per_hour(State(state): State<AppState>, Query(q): Query<SinceQuery>) -> Result<Json<Value>, ApiError> {
    let since = parse_time("since", q.since.as_deref().unwrap_or("24h"))?;
    let hours = state.store.runs_per_hour(since).await.map_err(|e| ApiError::backend("run store", e))?;
    Ok(Json(json!({"since": since, "hours": hours})))
}
