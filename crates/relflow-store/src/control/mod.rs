//! Operator requests and message history: what people ask of runs (re-run,
//! cancel) and everything that happened to one message besides its runs.
//!
//! The run store is the one thing every worker on every host shares, so it
//! is where requests travel:
//!
//! * **Re-run.** The console writes a request row, then queues the message
//!   again with the request id in a header. A worker honours the header only
//!   by taking that row ([`Control::take_rerun`]): a header a bus message
//!   made up names no row, so it changes nothing. Taking is atomic, so one
//!   request makes one run.
//! * **Cancel.** The console writes a request row; the worker holding the
//!   run polls [`Control::cancel_requested`] (one primary-key read a second
//!   per running run) and stops it.
//! * **History.** Deliveries that are not first deliveries, retries, dead
//!   letters, replays and requests are appended to a per-message log; with
//!   the runs of that message it is the message's whole story.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

/// What an operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Rerun,
    Cancel,
    /// An approver opened a gate: run its work (once).
    Approve,
    /// A gate's approval expired: dead-letter its message (once).
    Expire,
    /// An approver refused a gate.
    Deny,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Rerun => "rerun",
            RequestKind::Cancel => "cancel",
            RequestKind::Approve => "approve",
            RequestKind::Expire => "expire",
            RequestKind::Deny => "deny",
        }
    }

    fn parse(s: &str) -> RequestKind {
        match s {
            "cancel" => RequestKind::Cancel,
            "approve" => RequestKind::Approve,
            "expire" => RequestKind::Expire,
            "deny" => RequestKind::Deny,
            _ => RequestKind::Rerun,
        }
    }
}

/// An operator's request about one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    /// Unique; a re-run carries it through the queue in a header.
    pub id: String,
    pub kind: RequestKind,
    /// The run it is about (for a re-run, the original).
    pub run_id: String,
    pub message_id: String,
    pub rule: String,
    /// Who asked (the console's caller, or `user@host` from the CLI).
    pub by: String,
    pub at: DateTime<Utc>,
}

impl Request {
    /// A request made now. Only a re-run's id is new each time; the others
    /// are derived from the run, so asking twice is one request.
    pub fn new(kind: RequestKind, run_id: &str, message_id: &str, rule: &str, by: &str) -> Request {
        let id = match kind {
            RequestKind::Rerun => format!("rerun:{}", uuid::Uuid::new_v4()),
            _ => format!("{}:{run_id}", kind.as_str()),
        };
        Request {
            id,
            kind,
            run_id: run_id.to_owned(),
            message_id: message_id.to_owned(),
            rule: rule.to_owned(),
            by: by.to_owned(),
            at: Utc::now(),
        }
    }
}

/// One thing that happened to a message (its runs are in the runs table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEvent {
    pub message_id: String,
    pub at: DateTime<Utc>,
    /// `redelivered`, `retry`, `dead_lettered`, `replayed`, `rerun_requested`,
    /// `cancel_requested`, ...
    pub kind: String,
    /// The delivery's attempt, where there was one.
    pub attempt: Option<u32>,
    /// Which worker or person, where known.
    pub by: Option<String>,
    /// The run it is about, where there is one.
    pub run_id: Option<String>,
    /// What happened, in words (the retry delay, the dead letter's reason...).
    pub detail: String,
}

impl HistoryEvent {
    /// An event happening now.
    pub fn now(message_id: &str, kind: &str, detail: impl Into<String>) -> HistoryEvent {
        HistoryEvent {
            message_id: message_id.to_owned(),
            at: Utc::now(),
            kind: kind.to_owned(),
            attempt: None,
            by: None,
            run_id: None,
            detail: detail.into(),
        }
    }
}

/// The requests-and-history half of the run store; every
/// [`RunStore`](crate::RunStore) is one.
#[async_trait]
pub trait Control: Send + Sync {
    /// Records `request` and its history event in one transaction. `false`
    /// when the same request (a second cancel of one run) was made before.
    async fn request(&self, request: &Request) -> Result<bool>;

    /// Takes queued request `id` (a re-run, an approval or an expiry) for
    /// message `message_id` for the run `new_run_id`, once: `None` when
    /// there is no such untaken request.
    async fn take_rerun(&self, id: &str, message_id: &str, new_run_id: &str) -> Result<Option<Request>>;

    /// Who asked to cancel run `run_id`, if anyone did.
    async fn cancel_requested(&self, run_id: &str) -> Result<Option<String>>;

    /// The run that `run_id` re-ran, if it is a re-run.
    async fn rerun_of(&self, run_id: &str) -> Result<Option<String>>;

    /// Appends an event to a message's history.
    async fn record_event(&self, event: &HistoryEvent) -> Result<()>;

    /// A message's history, oldest first.
    async fn history(&self, message_id: &str) -> Result<Vec<HistoryEvent>>;
}

// The statements both backends run, written once with `?N` placeholders
// (PostgreSQL gets `$N`) so they cannot disagree.

pub(crate) const INSERT_REQUEST: &str = "INSERT INTO relflow_requests
     (id, kind, run_id, message_id, rule, requested_by, requested_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (id) DO NOTHING";

/// ?1 now, ?2 new run, ?3 id, ?4 message id.
pub(crate) const TAKE_RERUN: &str = "UPDATE relflow_requests SET taken_at = ?1, new_run_id = ?2
     WHERE id = ?3 AND message_id = ?4 AND kind IN ('rerun', 'approve', 'expire') AND taken_at IS NULL
     RETURNING id, kind, run_id, message_id, rule, requested_by, requested_at";

pub(crate) const CANCEL_REQUESTED: &str =
    "SELECT requested_by FROM relflow_requests WHERE id = 'cancel:' || ?1 AND kind = 'cancel'";

pub(crate) const RERUN_OF: &str =
    "SELECT run_id FROM relflow_requests WHERE new_run_id = ?1 AND kind IN ('rerun', 'approve')";

pub(crate) const INSERT_EVENT: &str = "INSERT INTO relflow_history
     (message_id, at, kind, attempt, by_whom, run_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

pub(crate) const HISTORY: &str = "SELECT message_id, at, kind, attempt, by_whom, run_id, detail
     FROM relflow_history WHERE message_id = ?1 ORDER BY seq";

/// The history event a request writes.
pub(crate) fn request_event(r: &Request) -> HistoryEvent {
    let detail = match r.kind {
        RequestKind::Rerun => format!("re-run of rule {} requested", r.rule),
        RequestKind::Cancel => format!("cancel of rule {}'s run requested", r.rule),
        RequestKind::Approve => format!("rule {}'s run approved", r.rule),
        RequestKind::Expire => format!("rule {}'s approval expired", r.rule),
        RequestKind::Deny => format!("rule {}'s run denied", r.rule),
    };
    HistoryEvent {
        message_id: r.message_id.clone(),
        at: r.at,
        kind: match r.kind {
            RequestKind::Approve => "approved".into(),
            RequestKind::Expire => "approval_expired".into(),
            RequestKind::Deny => "denied".into(),
            other => format!("{}_requested", other.as_str()),
        },
        attempt: None,
        by: Some(r.by.clone()),
        run_id: Some(r.run_id.clone()),
        detail,
    }
}
