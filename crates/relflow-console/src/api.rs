//! The JSON API (described in docs/openapi.json, which is tested against it).

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use relflow_core::config::{Permission, PlaybookSpec};
use relflow_engine::DeadLetterView;
use relflow_store::{RunFilter, RunStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::{auth, control, ingest, runs, AppState};

/// The API description, checked in and served as is.
const OPENAPI: &str = include_str!("../../../docs/openapi.json");

pub fn routes(state: AppState) -> Router {
    let reads = runs::routes()
        .merge(control::reads())
        .route("/api/queue", get(queue))
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/rules", get(rules))
        .route("/api/batches", get(batches))
        .route("/api/timers", get(timers))
        .route("/api/workers", get(workers))
        .route("/api/info", get(info))
        .route("/api/audit", get(super::audit::list))
        .route("/metrics", get(metrics))
        .route_layer(auth::needs(&state, Permission::Read, "read"));
    // Each mutation names the permission it needs and its audit action
    // (the README's roles table says the same).
    let need = |permission, action| auth::needs(&state, permission, action);
    let mut writes = Router::new()
        .route("/api/dead-letters/{id}/replay", post(replay).route_layer(need(Permission::Operate, "replay")))
        .route("/api/dead-letters", delete(purge).route_layer(need(Permission::Admin, "purge")))
        .route("/api/runs/{id}/rerun", post(control::rerun).route_layer(need(Permission::Operate, "rerun")))
        .route("/api/runs/{id}/cancel", post(control::cancel).route_layer(need(Permission::Operate, "cancel")))
        .route("/api/runs/{id}/approve", post(control::approve).route_layer(need(Permission::Approve, "approve")))
        .route("/api/runs/{id}/deny", post(control::deny).route_layer(need(Permission::Approve, "deny")));
    if state.ingest {
        // Room for the largest allowed message plus JSON framing; the handler
        // answers 413 with the limit in words.
        let limit = state.config.max_message_bytes.saturating_add(relflow_core::WRAPPING_ALLOWANCE);
        let publish = post(ingest::publish).layer(DefaultBodyLimit::max(limit));
        writes = writes.route("/api/publish", publish.route_layer(need(Permission::Operate, "publish")));
    }
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
    // Lost bus messages are worth seeing here but do not make relflow unready.
    let fedmsg = state.sink.gaps().map(|g| g.totals().map_err(|e| e.to_string()));
    let fedmsg = match fedmsg {
        Some(Ok(t)) => json!(t),
        Some(Err(e)) => json!({"error": e}),
        None => Value::Null,
    };
    // Likewise a source that is down: it is retried, and others go on.
    let sources = state.sink.links();
    let body = json!({"ready": ready, "queue": queue, "store": store, "fedmsg_sequence": fedmsg, "sources": sources});
    (code, Json(body)).into_response()
}

async fn queue(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let depth = state.depth().await.map_err(|e| ApiError::backend("queue", e))?;
    Ok(Json(json!({"depth": depth, "history": state.depth_history()})))
}

/// Every worker seen in the last day (heartbeat, host, what it runs now).
async fn workers(State(state): State<AppState>) -> Result<Json<relflow_engine::fleet::FleetView>, ApiError> {
    let fleet = relflow_engine::fleet::fleet(state.store.as_ref()).await;
    Ok(Json(fleet.map_err(|e| ApiError::backend("run store", e))?))
}

/// Open coalesce windows and joins: key, what arrived, what is missing, when it closes.
async fn batches(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let open = state.store.open_batches().await.map_err(|e| ApiError::backend("run store", e))?;
    Ok(Json(json!({"batches": relflow_engine::batch_views(&state.config, open)})))
}

/// The `[[timer]]`s: next fire, last fire, slots missed while no worker ran.
async fn timers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let states = state.store.timer_states().await.map_err(|e| ApiError::backend("run store", e))?;
    Ok(Json(json!({"timers": relflow_engine::timer_views(&state.config, &states, chrono::Utc::now())})))
}

#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn dead_letters(State(state): State<AppState>, Query(q): Query<LimitQuery>) -> Result<Json<Value>, ApiError> {
    let dead =
        state.queue.dead_letters(q.limit.unwrap_or(100).min(1000)).await.map_err(|e| ApiError::backend("queue", e))?;
    let rows: Vec<DeadLetterView> = dead.iter().map(DeadLetterView::from).collect();
    Ok(Json(json!({"dead_letters": rows})))
}

async fn replay(State(state): State<AppState>, Path(id): Path<u64>) -> Result<Json<Value>, ApiError> {
    let dead = state.queue.find_dead_letter(id).await.map_err(|e| ApiError::backend("queue", e))?;
    let Some(dead) = dead else {
        return Err(ApiError::not_found(format!("no dead letter with id {id}; list them with GET /api/dead-letters")));
    };
    let done = relflow_engine::already_succeeded(&state.config, state.store.as_ref(), &dead).await;
    if let Some(done) = done.map_err(|e| ApiError::backend("run store", e))? {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("dead letter {id} stays: {done}")));
    }
    // Through the intake, like every other way onto the queue (it counts it).
    let found = state.sink.replay(id).await.map_err(|e| ApiError::backend("queue", e))?;
    if !found {
        return Err(ApiError::not_found(format!("no dead letter with id {id}; list them with GET /api/dead-letters")));
    }
    Ok(Json(json!({"replayed": id})))
}

async fn purge(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let purged = state.queue.purge_dead_letters().await.map_err(|e| ApiError::backend("queue", e))?;
    Ok(Json(json!({"purged": purged})))
}

async fn rules(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    // One read of the maintained counters, not a count per rule and status.
    let summary = state.store.summary().await.map_err(|e| ApiError::backend("run store", e))?;
    let mut rows = Vec::new();
    for rule in &state.config.rules {
        let mut counts = serde_json::Map::new();
        let mut total = 0;
        for status in RunStatus::ALL {
            let n: u64 = summary.iter().filter(|c| c.rule == rule.name && c.status == status).map(|c| c.count).sum();
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
        "token_configured": !state.tokens.is_empty(),
        "protect_reads": state.protect_reads,
        "queue": if state.config.queue.is_rabbitmq() { "rabbitmq" } else { "embedded" },
    }))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let fleet = relflow_engine::fleet::fleet(state.store.as_ref()).await.ok();
    let mut depth = state.queue.depth().await.ok();
    if let (Some(f), Some(d)) = (&fleet, &mut depth) {
        f.count_in_flight(&state.config, d);
    }
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(depth, fleet.as_ref()),
    )
        .into_response()
}
