//! `[retention]`: pruning old runs, logs and dead letters, periodically
//! (the worker and `relflow serve`) and on demand (`relflow prune`).
//!
//! Each kind is pruned in batches of [`BATCH`] rows, one short transaction
//! each, with a pause between them: a prune of a million old runs never
//! holds the store's writer (or the queue's) for more than one batch, and
//! the worker's own writes slip in between.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use relflow_core::config::RetentionConfig;
use relflow_queue::WorkQueue;
use relflow_store::{Prune, RunStore};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Rows deleted per transaction.
const BATCH: usize = 1000;
/// The pause between two batches.
const BETWEEN_BATCHES: Duration = Duration::from_millis(50);
/// How often the periodic prune runs (and, first, this long after start,
/// so a restart loop does not prune in a loop).
const EVERY: Duration = Duration::from_secs(600);

/// What a prune deleted (or, dry, would delete), per kind; `None`: that
/// kind has no retention set and is kept forever.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PruneReport {
    /// Counted only, nothing deleted.
    pub dry_run: bool,
    /// Runs (with their logs).
    pub runs: Option<u64>,
    /// Logs of runs that stay.
    pub logs: Option<u64>,
    /// Dead letters.
    pub dead_letters: Option<u64>,
}

impl std::fmt::Display for PruneReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run { "would delete" } else { "deleted" };
        for (kind, n) in [("runs", self.runs), ("logs", self.logs), ("dead letters", self.dead_letters)] {
            match n {
                Some(n) => writeln!(f, "{kind:<13} {verb} {n}")?,
                None => writeln!(f, "{kind:<13} kept forever (no [retention] setting)")?,
            }
        }
        Ok(())
    }
}

/// Why a prune stopped.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The run store failed.
    #[error("cannot prune the run store: {0}")]
    Store(#[from] relflow_store::StoreError),
    /// The queue failed.
    #[error("cannot prune the dead letters: {0}")]
    Queue(#[from] relflow_queue::QueueError),
}

/// The cut for keeping `keep`: rows older than this go.
fn cut(now: DateTime<Utc>, keep: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX)
}

/// Prunes (or, with `dry_run`, counts) everything `retention` says is too
/// old at `now`.
pub async fn prune(
    store: &dyn RunStore,
    queue: &dyn WorkQueue,
    retention: &RetentionConfig,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PruneReport, PruneError> {
    let mut report = PruneReport { dry_run, ..Default::default() };
    // Logs first: a run about to go takes its log with it anyway.
    for (what, keep, slot) in
        [(Prune::Logs, retention.logs, &mut report.logs), (Prune::Runs, retention.runs, &mut report.runs)]
    {
        let Some(keep) = keep else { continue };
        let before = cut(now, keep);
        *slot = Some(if dry_run {
            store.prunable(what, before).await?
        } else {
            batches(|| store.prune(what, before, BATCH)).await?
        });
    }
    if let Some(keep) = retention.dead_letters {
        let before = cut(now, keep);
        report.dead_letters = Some(if dry_run {
            queue.prunable_dead_letters(before).await?
        } else {
            batches(|| queue.prune_dead_letters(before, BATCH)).await?
        });
    }
    Ok(report)
}

/// Calls `one` (a batch) until a batch is short; the total.
async fn batches<F, Fut, E>(mut one: F) -> Result<u64, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, E>>,
{
    let mut total = 0;
    loop {
        let n = one().await?;
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
        tokio::time::sleep(BETWEEN_BATCHES).await;
    }
}

/// Prunes every [`EVERY`] until `stop` fires; nothing when no retention is
/// set. A failed prune is logged and tried again next time.
pub async fn keep_pruning(
    store: Arc<dyn RunStore>,
    queue: Arc<dyn WorkQueue>,
    retention: RetentionConfig,
    stop: CancellationToken,
) {
    if !retention.is_set() {
        return;
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match prune(store.as_ref(), queue.as_ref(), &retention, Utc::now(), false).await {
            Ok(r) => info!(runs = ?r.runs, logs = ?r.logs, dead_letters = ?r.dead_letters, "retention: pruned"),
            Err(e) => warn!("retention: {e}"),
        }
    }
}
