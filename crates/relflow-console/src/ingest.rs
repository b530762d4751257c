//! `POST /api/publish`: the same decoding as `relflow publish`, through the
//! same door (the intake's dedupe and counters).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use relflow_core::{DecodeError, Message};
use relflow_ingest::Outcome;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;

const SOURCE: &str = "http";

/// With `?topic=T` the body is the message's JSON object body; without it, a
/// fedmsg envelope or fedora-messaging message. `?force=true` queues it even
/// if its id was queued within the dedupe window.
pub async fn publish(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let sink = &state.sink;
    let limit = sink.max_bytes();
    if body.len() > limit {
        sink.reject(SOURCE, None, None, "too_large", format!("body is {} bytes", body.len()));
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("message is {} bytes, over max_message_bytes ({limit})", body.len()),
        ));
    }
    let msg = decode(query.get("topic"), &body, limit).map_err(|reason| {
        sink.reject(SOURCE, None, query.get("topic").map(String::as_str), "decode", reason.clone());
        ApiError::bad_request(reason)
    })?;
    let force = query.get("force").is_some_and(|v| v == "true" || v == "1");
    let (id, topic) = (msg.id.clone(), msg.topic.clone());
    let submitted = if force { sink.submit_forced(msg).await } else { sink.submit(msg).await };
    match submitted
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("cannot queue the message: {e}")))?
    {
        Outcome::Queued => Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "topic": topic, "outcome": "queued"})))),
        Outcome::Duplicate => Ok((
            StatusCode::OK,
            Json(json!({"id": id, "topic": topic, "outcome": "duplicate",
                        "detail": "already queued within [ingest] dedupe_window; ?force=true queues it anyway"})),
        )),
        Outcome::Rejected { check, reason } => Err(ApiError::bad_request(format!("refused [{check}]: {reason}"))),
    }
}

fn decode(topic: Option<&String>, body: &[u8], limit: usize) -> Result<Message, String> {
    match topic {
        Some(topic) => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Message::new(topic, map, SOURCE).map_err(|e: DecodeError| e.to_string()),
            Ok(other) => {
                Err(format!("with ?topic= the body must be a JSON object, found {}", relflow_core::json_type(&other)))
            }
            Err(e) => Err(format!("body is not valid JSON: {e}")),
        },
        None => Message::decode(body, SOURCE, limit).map_err(|e| {
            format!(
                "not a fedmsg or fedora-messaging message ({e}); to send a bare body use POST /api/publish?topic=TOPIC"
            )
        }),
    }
}
