//! What operators ask of runs, for the CLI and the HTTP API alike: re-run a
//! run, cancel a running one, approve or deny one awaiting approval, and
//! read a message's whole history. The
//! worker's side (honouring them) is in `run.rs`.

use chrono::{DateTime, Utc};
use relflow_core::{Config, Message};
use relflow_ingest::{Outcome, Sink};
use relflow_store::{HistoryEvent, Request, RequestKind, RunDetail, RunFilter, RunRecord, RunStatus, RunStore};
use serde::Serialize;

/// The header a re-run is queued with: the id of its request in the run
/// store. A worker acts on it only by taking that request, so a bus message
/// that sets it gets no special treatment.
pub const RERUN_HEADER: &str = "relflow_rerun";

/// Why a request about a run cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No run has that id (or prefix).
    #[error("no run with id {0:?}")]
    NoSuchRun(String),
    /// Only running runs can be cancelled.
    #[error("run {id} is {status}, not running: there is nothing to cancel")]
    NotRunning {
        /// The run.
        id: String,
        /// How it ended.
        status: RunStatus,
    },
    /// Only runs awaiting approval can be approved or denied.
    #[error("run {id} is {status}, not awaiting approval: there is nothing to decide")]
    NotAwaiting {
        /// The run.
        id: String,
        /// Where it is now (decided already, by someone else too).
        status: RunStatus,
    },
    /// The caller is not one of the rule's approvers.
    #[error("{who:?} is not an approver of rule {rule:?} (its approval.approvers: {approvers})")]
    NotApprover {
        /// The caller.
        who: String,
        /// The run's rule.
        rule: String,
        /// Who may decide, in words.
        approvers: String,
    },
    /// The stored message cannot be queued again.
    #[error("run {0} has no message that can be queued again: {1}")]
    BadMessage(String, String),
    /// The intake refused the message or the queue is down.
    #[error("cannot queue the re-run: {0}")]
    Queue(String),
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] relflow_store::StoreError),
}

/// Finds run `id` (or a unique prefix).
async fn find(store: &dyn RunStore, id: &str) -> Result<RunDetail, ControlError> {
    store.get(id).await?.ok_or_else(|| ControlError::NoSuchRun(id.to_owned()))
}

/// Queues run `id`'s message again for its rule alone, to run even though
/// the rule may already have succeeded for it. Returns the request; the new
/// run links back to the original (`rerun_of`).
pub async fn rerun(store: &dyn RunStore, sink: &Sink, id: &str, by: &str) -> Result<Request, ControlError> {
    let run = find(store, id).await?;
    let r = &run.record;
    let msg = stored_message(&run)?;
    let request = Request::new(RequestKind::Rerun, &r.id, &r.message_id, &r.rule, by);
    store.request(&request).await?;
    queue_with(sink, msg, request).await
}

/// The message run `run` was made for, as it was queued.
fn stored_message(run: &RunDetail) -> Result<Message, ControlError> {
    serde_json::from_value(run.message.clone())
        .map_err(|e| ControlError::BadMessage(run.record.id.clone(), e.to_string()))
}

/// Queues `msg` again carrying `request` (stored already), which the worker
/// that takes it honours once.
async fn queue_with(sink: &Sink, mut msg: Message, request: Request) -> Result<Request, ControlError> {
    msg.headers.insert(RERUN_HEADER.into(), request.id.clone().into());
    match sink.submit_forced(msg).await {
        Ok(Outcome::Queued | Outcome::Duplicate) => Ok(request),
        Ok(Outcome::Rejected { check, reason }) => Err(ControlError::Queue(format!("refused [{check}]: {reason}"))),
        Err(e) => Err(ControlError::Queue(e.to_string())),
    }
}

/// Whether the token `name` (in `groups`; `admin` for the admin role) may
/// decide on a run of `rule`: it is named in the rule's `approval.approvers`,
/// or one of its groups is. A rule no longer gated (or gone from the
/// config) has nobody to check against: admins only.
pub fn check_approver(
    config: &Config,
    rule: &str,
    name: &str,
    groups: &[String],
    admin: bool,
) -> Result<(), ControlError> {
    let approval = config.rules.iter().find(|r| r.name == rule).and_then(|r| r.approval.as_ref());
    match approval {
        Some(a) if a.allows(name, groups) => Ok(()),
        None if admin => Ok(()),
        _ => Err(ControlError::NotApprover {
            who: name.to_owned(),
            rule: rule.to_owned(),
            approvers: approval
                .map_or_else(|| "none: the rule is not gated now, so admins only".into(), |a| a.approvers.join(", ")),
        }),
    }
}

/// Approves run `id` (awaiting approval): it becomes `approved` and its
/// message is queued to run the rule once, as a new run linked to it
/// (`rerun_of`). Of two approvals at once, one wins; the other gets
/// [`ControlError::NotAwaiting`].
pub async fn approve(store: &dyn RunStore, sink: &Sink, id: &str, by: &str) -> Result<Request, ControlError> {
    let run = find(store, id).await?;
    let r = &run.record;
    let msg = stored_message(&run)?;
    let request = Request::new(RequestKind::Approve, &r.id, &r.message_id, &r.rule, by);
    decide(store, &run, &request, None).await?;
    queue_with(sink, msg, request).await
}

/// Denies run `id` (awaiting approval): it ends as `denied`, with who and
/// why as its error. Nothing runs and nothing is dead-lettered.
pub async fn deny(store: &dyn RunStore, id: &str, by: &str, reason: Option<&str>) -> Result<Request, ControlError> {
    let run = find(store, id).await?;
    let r = &run.record;
    let request = Request::new(RequestKind::Deny, &r.id, &r.message_id, &r.rule, by);
    let why = match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(reason) => format!("denied by {by}: {reason}"),
        None => format!("denied by {by}"),
    };
    decide(store, &run, &request, Some(&why)).await?;
    Ok(request)
}

/// The store's claim of a decision, or why there is none to make.
async fn decide(
    store: &dyn RunStore,
    run: &RunDetail,
    request: &Request,
    why: Option<&str>,
) -> Result<(), ControlError> {
    let not_awaiting = |status| ControlError::NotAwaiting { id: run.record.id.clone(), status };
    if run.record.status != RunStatus::AwaitingApproval {
        return Err(not_awaiting(run.record.status));
    }
    if store.decide(request, why).await? {
        return Ok(());
    }
    // Lost a race: say how it was decided.
    let now = store.get(&run.record.id).await?.map_or(run.record.status, |r| r.record.status);
    Err(not_awaiting(now))
}

/// Asks the worker holding running run `id` to stop it, wherever it is.
/// `Ok(false)`: it was asked before.
pub async fn cancel(store: &dyn RunStore, id: &str, by: &str) -> Result<(Request, bool), ControlError> {
    let run = find(store, id).await?;
    let r = &run.record;
    if r.status != RunStatus::Running {
        return Err(ControlError::NotRunning { id: r.id.clone(), status: r.status });
    }
    let request = Request::new(RequestKind::Cancel, &r.id, &r.message_id, &r.rule, by);
    let new = store.request(&request).await?;
    Ok((request, new))
}

/// One line of a message's history: a run, or something else that happened.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// When it happened (a run: when it started).
    pub at: DateTime<Utc>,
    /// `run`, or the event's kind.
    pub kind: String,
    /// The attempt (a run's, or the delivery's).
    pub attempt: Option<u32>,
    /// The worker or person.
    pub by: Option<String>,
    /// The run, where there is one.
    pub run_id: Option<String>,
    /// The rule, for runs.
    pub rule: Option<String>,
    /// A run's status.
    pub status: Option<RunStatus>,
    /// What happened, in words.
    pub detail: String,
}

impl From<HistoryEvent> for HistoryEntry {
    fn from(e: HistoryEvent) -> Self {
        HistoryEntry {
            at: e.at,
            kind: e.kind,
            attempt: e.attempt,
            by: e.by,
            run_id: e.run_id,
            rule: None,
            status: None,
            detail: e.detail,
        }
    }
}

impl From<RunRecord> for HistoryEntry {
    fn from(r: RunRecord) -> Self {
        let took = r.finished_at.map(|f| format!(" in {:.1}s", (f - r.started_at).num_milliseconds() as f64 / 1000.0));
        let detail = match &r.error {
            Some(e) => format!("{}{}: {e}", r.status, took.unwrap_or_default()),
            None => format!("{}{}", r.status, took.unwrap_or_default()),
        };
        HistoryEntry {
            at: r.started_at,
            kind: "run".into(),
            attempt: Some(r.attempt),
            by: Some(r.worker),
            run_id: Some(r.id),
            rule: Some(r.rule),
            status: Some(r.status),
            detail,
        }
    }
}

impl std::fmt::Display for HistoryEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}  {:<16}", self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), self.kind)?;
        if let Some(a) = self.attempt {
            write!(f, "  attempt {a}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, "  {rule}")?;
        }
        if let Some(run) = &self.run_id {
            write!(f, "  run {}", &run[..run.len().min(8)])?;
        }
        write!(f, "  {}", self.detail)?;
        if let Some(by) = &self.by {
            write!(f, "  ({by})")?;
        }
        Ok(())
    }
}

/// Everything that happened to message `message_id`, oldest first: its
/// runs and the events around them. Empty when relflow never saw it.
pub async fn history(store: &dyn RunStore, message_id: &str) -> Result<Vec<HistoryEntry>, ControlError> {
    let filter = RunFilter { message_id: Some(message_id.to_owned()), ..Default::default() };
    let mut entries: Vec<HistoryEntry> = store.list(&filter).await?.into_iter().map(HistoryEntry::from).collect();
    entries.extend(store.history(message_id).await?.into_iter().map(HistoryEntry::from));
    // Stable: an event written in the same millisecond as a run keeps its place.
    entries.sort_by_key(|e| e.at);
    Ok(entries)
}
