//! The durable work queue between ingest and the workers.
//!
//! Every event relflow accepts is put on a [`WorkQueue`] before anything else
//! happens to it, and it stays there until a worker has recorded what it did
//! with it. The trait is deliberately small: it is the seam where the embedded
//! SQLite queue ([`SqliteQueue`], the default) and the RabbitMQ backend sit side
//! by side, so the worker never knows which one it talks to.
//!
//! # Delivery contract
//!
//! * [`WorkQueue::enqueue`] returns only once the payload is durable (committed
//!   to disk, or confirmed by the broker).
//! * [`WorkQueue::claim`] hands one payload to one worker. Until that worker
//!   calls [`ack`](WorkQueue::ack), [`retry`](WorkQueue::retry),
//!   [`dead_letter`](WorkQueue::dead_letter) or [`release`](WorkQueue::release),
//!   no other worker sees it. If the worker dies, the payload is delivered again
//!   (at least once; the worker makes runs idempotent through the run store).
//! * The queue stores bytes, not messages: a payload that cannot be decoded is
//!   the worker's business (it dead-letters it with a reason), so a broken
//!   producer can never wedge the queue.

pub mod file;
mod reclaim;
mod sqlite;
mod wal_watch;
mod writer;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use sqlite::{SqliteQueue, SqliteQueueOptions};

/// One claimed payload. Hand it back to the queue with exactly one of
/// `ack`, `retry`, `dead_letter` or `release`.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The backend's handle for this delivery (row id, delivery tag, ...).
    pub tag: u64,
    /// The bytes that were enqueued.
    pub payload: Vec<u8>,
    /// Which attempt this is: 1 for the first, +1 for every [`WorkQueue::retry`].
    /// Redeliveries after a crash do not count: they are not failures of the
    /// work, and counting them would eat a rule's retry budget.
    pub attempt: u32,
    /// How many times this attempt has been handed to a worker, crashes and
    /// [`WorkQueue::release`]s included: 1 for the first handout, and again 1
    /// after a [`WorkQueue::retry`] (that handout finished, with a failure).
    /// Lets the worker dead-letter a "poison" message that kills every worker.
    pub deliveries: u32,
}

/// How many payloads are where, for `relflow` status lines and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Waiting to be claimed now.
    pub ready: u64,
    /// Claimed by a worker and not yet finished.
    pub in_flight: u64,
    /// Waiting for their retry delay to pass.
    pub delayed: u64,
    /// Given up on; see [`WorkQueue::dead_letters`].
    pub dead: u64,
}

impl QueueDepth {
    /// Payloads that still need work (ready, in flight or delayed).
    pub fn pending(&self) -> u64 {
        self.ready + self.in_flight + self.delayed
    }
}

/// A payload the queue gave up on, with the reason the worker gave.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Stable id for `dead-letters replay ID`.
    pub id: u64,
    #[serde(skip)]
    pub payload: Vec<u8>,
    pub reason: String,
    /// The attempt that failed last.
    pub attempt: u32,
    pub dead_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the queue at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("queue backend error: {0}")]
    Backend(String),
    /// The backend said no to who we are (a wrong password, a vhost the
    /// user may not use): retrying cannot help, so nothing retries it.
    #[error("queue backend refused us: {0}")]
    Refused(String),
    /// The embedded queue's file was deleted or replaced: this process can
    /// no longer reach the queue the others use, so it must stop.
    #[error("queue file gone: {0}")]
    Gone(String),
    /// The embedded queue's files can no longer be written (see
    /// [`file::Guard`]): going on would mean a SIGBUS, so the process stops.
    #[error("queue file unwritable: {0}")]
    Unwritable(#[from] file::Unwritable),
}

impl QueueError {
    /// Whether a process using the queue has to stop (systemd restarts it)
    /// instead of trying again.
    pub fn is_fatal(&self) -> bool {
        matches!(self, QueueError::Gone(_) | QueueError::Unwritable(_))
    }
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// A durable queue of payloads with at-least-once delivery.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Store a payload durably; returns once it survives a crash.
    async fn enqueue(&self, payload: &[u8]) -> Result<()>;

    /// Take the next ready payload, waiting up to `wait` for one to appear.
    /// `None` means nothing was ready in that time.
    async fn claim(&self, wait: Duration) -> Result<Option<Delivery>>;

    /// Take up to `max` ready payloads at once, waiting up to `wait` for
    /// the first; empty means nothing was ready in that time. Each is a
    /// delivery like [`claim`](WorkQueue::claim)'s. A backend that can hand
    /// out several in one round trip overrides this (the embedded queue:
    /// one transaction, so one fsync, for all of them).
    async fn claim_many(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let _ = max;
        Ok(self.claim(wait).await?.into_iter().collect())
    }

    /// Tell the queue the worker is still busy with `delivery`, so it is not
    /// handed to another worker. Call it every [`lease_renewal`](WorkQueue::lease_renewal)
    /// while the work runs.
    async fn keep_alive(&self, delivery: &Delivery) -> Result<()>;

    /// How often a worker holding a delivery must call `keep_alive`, or
    /// `None` when the backend sees a dead worker by itself (RabbitMQ: the
    /// connection drops). The queue decides, because only it knows how long
    /// its lease is.
    fn lease_renewal(&self) -> Option<Duration> {
        None
    }

    /// Done with it: remove it for good.
    async fn ack(&self, delivery: &Delivery) -> Result<()>;

    /// The work failed and may succeed later: deliver again after `delay`,
    /// with `attempt + 1`.
    async fn retry(&self, delivery: &Delivery, delay: Duration, reason: &str) -> Result<()>;

    /// The work cannot succeed (or ran out of retries): park it with a reason.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()>;

    /// The worker is shutting down before finishing: make it claimable again
    /// now, without counting an attempt.
    async fn release(&self, delivery: &Delivery) -> Result<()>;

    /// Counts for status lines and metrics.
    async fn depth(&self) -> Result<QueueDepth>;

    /// Dead letters, oldest first, at most `limit`.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Dead letter `id`, if there is one. The default scans the list: an
    /// operator's action on one dead letter, not a hot path.
    async fn find_dead_letter(&self, id: u64) -> Result<Option<DeadLetter>> {
        Ok(self.dead_letters(usize::MAX).await?.into_iter().find(|d| d.id == id))
    }

    /// Put dead letter `id` back on the queue as a fresh first attempt.
    /// Returns `false` if there is no such dead letter.
    async fn replay(&self, id: u64) -> Result<bool>;

    /// Delete all dead letters; returns how many there were.
    async fn purge_dead_letters(&self) -> Result<u64>;

    /// Delete up to `limit` dead letters that died before `before` (oldest
    /// first; `[retention] dead_letters`); returns how many went. Call it
    /// again until it returns less than `limit`.
    async fn prune_dead_letters(&self, before: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<u64>;

    /// How many dead letters died before `before` (`relflow prune --dry-run`).
    async fn prunable_dead_letters(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64>;
}
