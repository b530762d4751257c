//! A dead letter as operators see it (CLI and HTTP API alike): the queue's
//! record plus what could be decoded of the message.

use chrono::{DateTime, Utc};
use relflow_core::Message;
use relflow_queue::DeadLetter;
use serde::Serialize;

/// One dead letter, decoded where possible: a payload that is not a
/// message can be exactly why it died.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterView {
    /// The queue's id, for `relflow dead-letters replay ID`.
    pub id: u64,
    /// The message id, if the payload decodes.
    pub msg_id: Option<String>,
    /// The topic, if the payload decodes.
    pub topic: Option<String>,
    /// The message body, if the payload decodes.
    pub body: Option<serde_json::Map<String, serde_json::Value>>,
    /// Why it was given up on.
    pub reason: String,
    /// The attempt that failed last.
    pub attempt: u32,
    /// When it was given up on.
    pub dead_at: DateTime<Utc>,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(d: &DeadLetter) -> Self {
        let msg = Message::from_queue_payload(&d.payload, usize::MAX).ok();
        DeadLetterView {
            id: d.id,
            msg_id: msg.as_ref().map(|m| m.id.clone()),
            topic: msg.as_ref().map(|m| m.topic.clone()),
            body: msg.map(|m| m.body),
            reason: d.reason.clone(),
            attempt: d.attempt,
            dead_at: d.dead_at,
        }
    }
}

impl std::fmt::Display for DeadLetterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>5}  {}  {}  attempt {}\n       {}",
            self.id,
            self.dead_at.to_rfc3339(),
            self.topic.as_deref().unwrap_or("<undecodable>"),
            self.attempt,
            self.reason
        )
    }
}
