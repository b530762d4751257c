//! Ingest inside `relflow serve`: the one door to the queue for HTTP
//! publishing today and for bridge sources (fedmsg, AMQP, webhooks) later.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use relflow_core::{DecodeError, Message};
use relflow_queue::{QueueError, WorkQueue};
use serde_json::{json, Value};

use super::api::ApiError;
use super::AppState;
use crate::metrics::Metrics;

/// Puts decoded messages on the queue and counts what comes in. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    queue: Arc<dyn WorkQueue>,
    metrics: Arc<Metrics>,
    /// Bigger messages are refused (`max_message_bytes`).
    pub max_message_bytes: usize,
}

impl Ingest {
    pub fn new(state: &AppState) -> Ingest {
        Ingest {
            queue: Arc::clone(&state.queue),
            metrics: Arc::clone(&state.metrics),
            max_message_bytes: state.config.max_message_bytes,
        }
    }

    /// Queues `msg` durably (returns once it is stored) and counts it as
    /// received from `msg.source`.
    pub async fn accept(&self, msg: &Message) -> Result<(), QueueError> {
        self.queue.enqueue(&msg.to_queue_payload()).await?;
        self.metrics.received(&msg.source);
        Ok(())
    }

    /// Counts a refused message. `reason` is a short fixed word
    /// (`too_large`, `invalid`, `bad_signature`...), never free text.
    pub fn reject(&self, source: &str, reason: &str) {
        self.metrics.rejected(source, reason);
    }
}

/// `POST /api/publish`: the same decoding as `relflow publish`. With
/// `?topic=T` the body is the message's JSON object body; without it, a
/// fedmsg envelope or fedora-messaging message.
pub async fn publish(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    const SOURCE: &str = "http";
    let ingest = Ingest::new(&state);
    let refuse = |reason: &str, message: String| {
        ingest.reject(SOURCE, reason);
        ApiError::new(StatusCode::BAD_REQUEST, message)
    };
    if body.len() > ingest.max_message_bytes {
        ingest.reject(SOURCE, "too_large");
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("message is {} bytes, over max_message_bytes ({})", body.len(), ingest.max_message_bytes),
        ));
    }
    let decoded: Result<Message, String> = match query.get("topic") {
        Some(topic) => match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => Message::new(topic, map, SOURCE).map_err(|e: DecodeError| e.to_string()),
            Ok(other) => {
                Err(format!("with ?topic= the body must be a JSON object, found {}", relflow_core::json_type(&other)))
            }
            Err(e) => Err(format!("body is not valid JSON: {e}")),
        },
        None => Message::decode(&body, SOURCE, ingest.max_message_bytes).map_err(|e| {
            format!(
                "not a fedmsg or fedora-messaging message ({e}); to send a bare body use POST /api/publish?topic=TOPIC"
            )
        }),
    };
    let msg = decoded.map_err(|m| refuse("invalid", m))?;
    ingest
        .accept(&msg)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("cannot queue the message: {e}")))?;
    Ok((StatusCode::ACCEPTED, Json(json!({"id": msg.id, "topic": msg.topic}))))
}
