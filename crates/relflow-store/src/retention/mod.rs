//! Retention: pruning runs and logs older than `[retention]` says, in
//! small batches so a big prune never holds the store (SQLite's one writer,
//! PostgreSQL's row locks) for long. Dead letters live in the queue and are
//! pruned there.
//!
//! A run still running or awaiting approval is never pruned, whatever its
//! age: its worker, or its approver, still needs it.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

/// What a prune removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prune {
    /// Runs (their logs, approval gates, and the message history and
    /// requests of the same age go with them).
    Runs,
    /// Logs only: the runs stay, with an empty log.
    Logs,
}

impl Prune {
    pub fn as_str(self) -> &'static str {
        match self {
            Prune::Runs => "runs",
            Prune::Logs => "logs",
        }
    }
}

/// The retention part of the run store; every [`RunStore`](crate::RunStore)
/// is one.
#[async_trait]
pub trait Retention: Send + Sync {
    /// Deletes up to `limit` of `what` from runs that started before
    /// `before` and have ended, in one short transaction, and says how many
    /// went. Call it again until it returns less than `limit`.
    async fn prune(&self, what: Prune, before: DateTime<Utc>, limit: usize) -> Result<u64>;

    /// How many [`prune`](Retention::prune) calls would delete in all
    /// (`relflow prune --dry-run`).
    async fn prunable(&self, what: Prune, before: DateTime<Utc>) -> Result<u64>;
}

// Statements for both backends: `{runs}` and `{logs}` are the tables'
// names, `?N` the placeholders (PostgreSQL gets `$N`). Each walks the
// `(started_at, id)` index from the oldest run.

/// The runs a prune may take: ended, and started before ?1.
const ENDED_BEFORE: &str = "started_at < ?1 AND status NOT IN ('running', 'awaiting_approval')";

/// The statements for `what`: (delete a batch of ?2, count all).
pub(crate) fn statements(what: Prune, runs: &str, logs: &str) -> (String, String) {
    let (delete, count) = match what {
        Prune::Runs => (
            format!(
                "DELETE FROM {{runs}} WHERE id IN (SELECT id FROM {{runs}} WHERE {ENDED_BEFORE} LIMIT ?2) RETURNING id"
            ),
            format!("SELECT COUNT(*) FROM {{runs}} WHERE {ENDED_BEFORE}"),
        ),
        Prune::Logs => (
            format!(
                "DELETE FROM {{logs}} WHERE id IN (SELECT r.id FROM {{runs}} r JOIN {{logs}} l ON l.id = r.id
                 WHERE r.{ENDED_BEFORE} LIMIT ?2) RETURNING id"
            ),
            format!("SELECT COUNT(*) FROM {{runs}} r JOIN {{logs}} l ON l.id = r.id WHERE r.{ENDED_BEFORE}"),
        ),
    };
    let name = |s: String| s.replace("{runs}", runs).replace("{logs}", logs);
    (name(delete), name(count))
}

/// A pruned run's approval gate (?1 its id).
pub(crate) const DELETE_GATE: &str = "DELETE FROM relflow_approvals WHERE run_id = ?1";

/// History and requests older than the cut (?1), a batch (?2) at a time.
pub(crate) const DELETE_HISTORY: &str =
    "DELETE FROM relflow_history WHERE seq IN (SELECT seq FROM relflow_history WHERE at < ?1 ORDER BY seq LIMIT ?2)";
pub(crate) const DELETE_REQUESTS: &str =
    "DELETE FROM relflow_requests WHERE id IN (SELECT id FROM relflow_requests WHERE requested_at < ?1 LIMIT ?2)";
