//! The JSON API (described in docs/openapi.json, which is tested against it).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use relflow_core::config::PlaybookSpec;
use relflow_store::{RunDetail, RunFilter, RunStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{auth, ingest, logs, AppState};

/// The API description, checked in and served as is.
const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

/// Most runs one page may hold.
const MAX_LIMIT: usize = 500;

/// An error answer: `{"error": "..."}` with a status code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn backend(what: &str, e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("cannot read the {what}: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

pub fn routes(state: AppState) -> Router {
    let reads = Router::new()
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(show_run))
        .route("/api/runs/{id}/log", get(logs::log_text))
        .route("/api/runs/{id}/log/stream", get(logs::stream_log))
        .route("/api/stats/runs-per-hour", get(runs_per_hour))
        .route("/api/queue", get(queue))
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/rules", get(rules))
        .route("/api/info", get(info))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&state), auth::read_access));
    let mut writes =
        Router::new().route("/api/dead-letters/{id}/replay", post(replay)).route("/api/dead-letters", delete(purge));
    if state.ingest {
        // Room for the largest allowed message plus JSON framing; the handler
        // answers 413 with the limit in words.
        let limit = state.config.max_message_bytes.saturating_add(64 << 10);
        writes = writes.route("/api/publish", post(ingest::publish).layer(DefaultBodyLimit::max(limit)));
    }
    let writes = writes.route_layer(axum::middleware::from_fn_with_state(Arc::clone(&state), auth::require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .merge(reads)
        .merge(writes)
        .with_state(state)
}

/// Ready when both the queue and the run store answer.
async fn readyz(State(state): State<AppState>) -> Response {
    let queue = state.queue.depth().await.map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string());
    let store =
        state.store.count(&RunFilter::default()).await.map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string());
    let ready = queue == "ok" && store == "ok";
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({"ready": ready, "queue": queue, "store": store}))).into_response()
}

/// Reads `2h`/`3d` (that long ago) or an RFC 3339 time.
fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = humantime::parse_duration(value).map_err(|_| {
        ApiError::bad_request(format!(
            "{name}={value:?}: give an RFC 3339 time (2024-05-01T12:00:00Z) or a duration ago (2h, 3d)"
        ))
    })?;
    Ok(Utc::now() - chrono::Duration::from_std(ago).unwrap_or_default())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    topic: Option<String>,
    rule: Option<String>,
    status: Option<String>,
    message_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn list_runs(
    State(state): State<AppState>,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| {
        ApiError::bad_request(format!("{e}; filters are topic, rule, status, message_id, since, until, limit, offset"))
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
        return Err(ApiError::bad_request(format!("limit must be 1..={MAX_LIMIT}; page with offset")));
    }
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = RunFilter {
        topic: non_empty(q.topic),
        rule: non_empty(q.rule),
        status,
        message_id: non_empty(q.message_id),
        since: non_empty(q.since).map(|v| parse_time("since", &v)).transpose()?,
        until: non_empty(q.until).map(|v| parse_time("until", &v)).transpose()?,
        limit,
        offset: q.offset.unwrap_or(0),
    };
    let runs = state.store.list(&filter).await.map_err(|e| ApiError::backend("run store", e))?;
    let total = state.store.count(&filter).await.map_err(|e| ApiError::backend("run store", e))?;
    Ok(Json(json!({"runs": runs, "total": total, "limit": filter.limit, "offset": filter.offset})))
}

/// A run by id or unique prefix, or a 404/400 that says what to do.
pub async fn find_run(state: &AppState, id: &str) -> Result<RunDetail, ApiError> {
    match state.store.get(id).await {
        Ok(Some(run)) => Ok(run),
        Ok(None) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("no run with id {id:?}; list runs with GET /api/runs")))
        }
        Err(relflow_store::StoreError::Ambiguous(p)) => {
            Err(ApiError::bad_request(format!("run id prefix {p:?} matches more than one run; give more characters")))
        }
        Err(e) => Err(ApiError::backend("run store", e)),
    }
}

async fn show_run(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let run = find_run(&state, &id).await?;
    let mut value = serde_json::to_value(&run).map_err(|e| ApiError::backend("run", e))?;
    if let Value::Object(map) = &mut value {
        // The log can be megabytes: it has its own endpoints.
        map.remove("log");
        map.insert("log_url".into(), format!("/api/runs/{}/log", run.record.id).into());
        map.insert("log_stream_url".into(), format!("/api/runs/{}/log/stream", run.record.id).into());
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

async fn queue(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let depth = state.queue.depth().await.map_err(|e| ApiError::backend("queue", e))?;
    Ok(Json(json!({"depth": depth, "history": state.depth_history()})))
}

#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn dead_letters(State(state): State<AppState>, Query(q): Query<LimitQuery>) -> Result<Json<Value>, ApiError> {
    let dead =
        state.queue.dead_letters(q.limit.unwrap_or(100).min(1000)).await.map_err(|e| ApiError::backend("queue", e))?;
    let rows: Vec<Value> = dead.iter().map(crate::commands::dead_letter_json).collect();
    Ok(Json(json!({"dead_letters": rows})))
}

async fn replay(State(state): State<AppState>, Path(id): Path<u64>) -> Result<Json<Value>, ApiError> {
    let found = state.queue.replay(id).await.map_err(|e| ApiError::backend("queue", e))?;
    if !found {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {id}; list them with GET /api/dead-letters"),
        ));
    }
    state.metrics.replayed();
    Ok(Json(json!({"replayed": id})))
}

async fn purge(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let purged = state.queue.purge_dead_letters().await.map_err(|e| ApiError::backend("queue", e))?;
    Ok(Json(json!({"purged": purged})))
}

async fn rules(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut rows = Vec::new();
    for rule in &state.config.rules {
        let mut counts = serde_json::Map::new();
        let mut total = 0;
        for status in RunStatus::ALL {
            let filter = RunFilter { rule: Some(rule.name.clone()), status: Some(status), ..Default::default() };
            let n = state.store.count(&filter).await.map_err(|e| ApiError::backend("run store", e))?;
            total += n;
            counts.insert(status.as_str().into(), n.into());
        }
        rows.push(json!({
            "name": rule.name,
            "topic": rule.topic.to_string(),
            "when": rule.when.as_ref().map(|w| w.source().to_owned()),
            "playbook": match &rule.playbook {
                PlaybookSpec::File(p) => p.display().to_string(),
                PlaybookSpec::FromTopic(t) => format!("<from topic via {t:?}>"),
            },
            "retries": rule.retries,
            "timeout_secs": rule.timeout.as_secs(),
            "runs": total,
            "runs_by_status": counts,
        }));
    }
    Ok(Json(json!({"rules": rows})))
}

/// What this process runs, for the page header.
async fn info(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "worker": state.worker,
        "ingest": state.ingest,
        "token_configured": state.token.is_some(),
        "protect_reads": state.protect_reads,
        "queue": if state.config.queue.url.is_some() { "rabbitmq" } else { "embedded" },
    }))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let depth = state.queue.depth().await.ok();
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(depth),
    )
        .into_response()
}
