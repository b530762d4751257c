//! A dead letter as operators see it (CLI and HTTP API alike): the queue's
//! record plus what could be decoded of the message, and whether replaying
//! it would run anything.

use chrono::{DateTime, Utc};
use relflow_core::{match_rules, Config, Message};
use relflow_queue::DeadLetter;
use relflow_store::{RunFilter, RunStatus, RunStore, StoreError};
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

/// Replaying this dead letter would run nothing: every rule its message
/// matches already succeeded for it, and a worker skips a rule that did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadySucceeded {
    /// The message's id.
    pub message_id: String,
    /// Each matching rule and the id of a run of it that succeeded.
    pub runs: Vec<(String, String)>,
}

impl std::fmt::Display for AlreadySucceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let runs: Vec<String> = self.runs.iter().map(|(rule, run)| format!("rule {rule}: run {run}")).collect();
        write!(
            f,
            "message {} already succeeded for every rule it matches ({}), so replaying it would run nothing; \
             to run one again: relflow runs rerun RUN",
            self.message_id,
            runs.join(", ")
        )
    }
}

/// Whether replaying `dead` would run nothing (see [`AlreadySucceeded`]).
/// `None` when it would run something, or when that cannot be told
/// (undecodable, no rule matches now, or a stateful or gated rule).
pub async fn already_succeeded(
    config: &Config,
    store: &dyn RunStore,
    dead: &DeadLetter,
) -> Result<Option<AlreadySucceeded>, StoreError> {
    let Ok(msg) = Message::from_queue_payload(&dead.payload, usize::MAX) else { return Ok(None) };
    let rules = match_rules(&config.rules, &msg).rules;
    if rules.is_empty() || rules.iter().any(|r| r.coalesce.is_some() || r.join.is_some()) {
        return Ok(None);
    }
    let mut runs = Vec::new();
    for rule in rules {
        let filter = RunFilter {
            message_id: Some(msg.id.clone()),
            rule: Some(rule.name.clone()),
            status: Some(RunStatus::Succeeded),
            limit: 1,
            ..RunFilter::default()
        };
        match store.list(&filter).await?.into_iter().next() {
            Some(run) => runs.push((rule.name.clone(), run.id)),
            None => return Ok(None),
        }
    }
    Ok(Some(AlreadySucceeded { message_id: msg.id, runs }))
}
