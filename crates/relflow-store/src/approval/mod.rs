//! Approval gates: a run of a gated rule waits in `awaiting_approval`
//! until an approver decides or its time runs out.
//!
//! The waiting run is an ordinary row of the runs table (so it lists, shows
//! and counts like any run) plus a row here with its deadline. Every
//! decision is one claim: an update of the run `WHERE status =
//! 'awaiting_approval'` and the decision's request row, in one transaction.
//! Two approvers racing, or an approver racing the expiry sweep, therefore
//! give exactly one decision; the loser is told it was decided already.
//! An approval's (or expiry's) request is then queued like a re-run and
//! taken once by a worker ([`Control::take_rerun`](crate::Control::take_rerun)).

pub(crate) mod postgres;
pub(crate) mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{NewRun, Request, RequestKind, Result, RunStatus};

/// The approval-gate part of the run store; every
/// [`RunStore`](crate::RunStore) is one.
#[async_trait]
pub trait Approvals: Send + Sync {
    /// Records `run` as awaiting approval until `expires_at`. `false`, and
    /// nothing written, when a run of the same message and rule already
    /// waits (a redelivered copy of the message).
    async fn await_approval(&self, run: &NewRun, expires_at: DateTime<Utc>) -> Result<bool>;

    /// Decides gate `request.run_id` as `request.kind` says (approve, deny
    /// or expire), with `why` as the run's error for a denial: `false` when
    /// the run is not awaiting approval (decided already, or never gated).
    async fn decide(&self, request: &Request, why: Option<&str>) -> Result<bool>;

    /// Runs still awaiting approval whose deadline is before `now`, oldest
    /// deadline first, at most `limit`.
    async fn expired(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<String>>;

    /// When run `run_id`'s approval expires, if it is gated.
    async fn expires_at(&self, run_id: &str) -> Result<Option<DateTime<Utc>>>;
}

/// The gates table, with `int` the backend's 64-bit integer type.
pub(crate) fn schema(int: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS relflow_approvals (
            run_id     TEXT PRIMARY KEY,
            message_id TEXT NOT NULL,
            rule       TEXT NOT NULL,
            expires_at {int} NOT NULL   -- unix ms
        );
        CREATE INDEX IF NOT EXISTS relflow_approvals_expires ON relflow_approvals (expires_at);"
    )
}

/// The status a decision leaves the run in.
pub(crate) fn decided_status(kind: RequestKind) -> RunStatus {
    match kind {
        RequestKind::Approve => RunStatus::Approved,
        _ => RunStatus::Denied,
    }
}

// Statements for both backends; `{runs}` is the runs table's name and `?N`
// the placeholders (PostgreSQL gets `$N`).

/// ?1 message id, ?2 rule.
pub(crate) const WAITING: &str =
    "SELECT 1 FROM {runs} WHERE message_id = ?1 AND rule = ?2 AND status = 'awaiting_approval' LIMIT 1";

/// ?1 run id, ?2 message id, ?3 rule, ?4 expires at (unix ms).
pub(crate) const INSERT_GATE: &str =
    "INSERT INTO relflow_approvals (run_id, message_id, rule, expires_at) VALUES (?1, ?2, ?3, ?4)";

/// ?1 status, ?2 now, ?3 error, ?4 run id.
pub(crate) const CLAIM: &str = "UPDATE {runs} SET status = ?1, finished_at = ?2, error = ?3
     WHERE id = ?4 AND status = 'awaiting_approval'";

/// ?1 now, ?2 limit.
pub(crate) const EXPIRED: &str = "SELECT a.run_id FROM relflow_approvals a JOIN {runs} r ON r.id = a.run_id
     WHERE a.expires_at < ?1 AND r.status = 'awaiting_approval' ORDER BY a.expires_at LIMIT ?2";

pub(crate) const EXPIRES_AT: &str = "SELECT expires_at FROM relflow_approvals WHERE run_id = ?1";

/// `sql` for the runs table `runs`.
pub(crate) fn on(sql: &str, runs: &str) -> String {
    sql.replace("{runs}", runs)
}
