//! The fleet: which workers are alive, where, and how busy.
//!
//! Every worker writes a heartbeat row into the run store every few
//! seconds ([`Fleet::beat`]): its host, pid, concurrency, prefetch, and how
//! many deliveries and playbooks it holds right now. The run store is the one
//! thing every worker on every host shares, so any process (`relflow serve`
//! on another host, `relflow status`) sees the whole fleet. A worker that
//! stops cleanly says so ([`Fleet::leave`]); one that dies just stops
//! beating, and readers call it lost once its beat is old.
//!
//! RabbitMQ tells a client how many messages are ready, not how many other
//! consumers hold unacked: the sum of the live workers' `held` is the
//! fleet's real in-flight count.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

/// Rows of workers not seen for this long are dropped (by the next beat of
/// any worker): a day of history is enough to see what died overnight.
pub const WORKERS_KEPT: Duration = Duration::from_secs(24 * 3600);

/// One worker's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerBeat {
    /// `host:pid`, as recorded with every run it makes.
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// relflow's version.
    pub version: String,
    /// Playbooks it runs at once.
    pub concurrency: u32,
    /// Deliveries it holds at once.
    pub prefetch: u32,
    /// Deliveries it holds now (claimed, not yet settled).
    pub held: u32,
    /// Playbooks it runs now.
    pub running: u32,
    pub started_at: DateTime<Utc>,
}

/// A worker as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerSeen {
    #[serde(flatten)]
    pub beat: WorkerBeat,
    /// Its latest heartbeat.
    pub seen_at: DateTime<Utc>,
    /// When it stopped cleanly; `None` while it runs (or if it died).
    pub stopped_at: Option<DateTime<Utc>>,
}

/// The fleet half of the run store; every [`RunStore`](crate::RunStore) is one.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// Records `beat` as the worker's latest heartbeat (and drops rows of
    /// workers unseen for [`WORKERS_KEPT`]).
    async fn beat(&self, beat: &WorkerBeat) -> Result<()>;

    /// The worker `id` stopped cleanly.
    async fn leave(&self, id: &str) -> Result<()>;

    /// Every worker seen in the last [`WORKERS_KEPT`], newest beat first.
    async fn workers(&self) -> Result<Vec<WorkerSeen>>;
}

// The statements both backends run, with `?N` placeholders (PostgreSQL gets
// `$N`), so they cannot disagree. Times are unix ms.

/// SQLite's; PostgreSQL's is the same with BIGINT for INTEGER.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relflow_workers (
    id          TEXT    PRIMARY KEY,
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    version     TEXT    NOT NULL,
    concurrency INTEGER NOT NULL,
    prefetch    INTEGER NOT NULL,
    held        INTEGER NOT NULL,
    running     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL,
    stopped_at  INTEGER
);
";

/// ?1 id .. ?9 started_at, ?10 now. A beat after a clean stop (a pid
/// reused) is a new life: `stopped_at` is cleared.
pub(crate) const BEAT: &str = "INSERT INTO relflow_workers
     (id, host, pid, version, concurrency, prefetch, held, running, started_at, seen_at, stopped_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL)
     ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, version = excluded.version,
        concurrency = excluded.concurrency, prefetch = excluded.prefetch, held = excluded.held,
        running = excluded.running, started_at = excluded.started_at, seen_at = excluded.seen_at,
        stopped_at = NULL";
/// ?1 oldest seen_at kept.
pub(crate) const PRUNE: &str = "DELETE FROM relflow_workers WHERE seen_at < ?1";
/// ?1 id, ?2 now.
pub(crate) const LEAVE: &str = "UPDATE relflow_workers SET stopped_at = ?2, held = 0, running = 0 WHERE id = ?1";
/// ?1 oldest seen_at listed.
pub(crate) const LIST: &str = "SELECT id, host, pid, version, concurrency, prefetch, held, running, started_at,
     seen_at, stopped_at FROM relflow_workers WHERE seen_at >= ?1 ORDER BY seen_at DESC, id";

/// The oldest `seen_at` kept and listed.
pub(crate) fn kept_since() -> i64 {
    crate::state::now_ms().saturating_sub(crate::state::ms(WORKERS_KEPT))
}

/// A count as stored (`INTEGER`/`BIGINT`) and back.
pub(crate) fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
