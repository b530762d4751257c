//! State of stateful rules: the open `coalesce` windows and `join`s, kept
//! in the run store so every worker shares them and a SIGKILL loses none.
//!
//! * A message is added to its rule's open batch for its key in one
//!   transaction ([`StateStore::add_to_batch`]), taken under a lock per
//!   (rule, key) so workers on many hosts agree on the one open batch. Only
//!   after that commit is the message acked to the work queue.
//! * A message is in at most one batch per rule (`(rule, message_id)` is
//!   unique): a redelivered copy is a [`Added::Duplicate`], never counted
//!   twice, even after its batch closed.
//! * A batch closes at its due time (window end, join timeout), or at once
//!   when it is full (`max` messages, every join part arrived). Any worker
//!   may claim a due batch ([`StateStore::claim_due_batch`]); the claim
//!   closes it (new messages open the next batch) and holds it for a lease.
//!   The claimant queues one message for it and marks it sent; a claimant
//!   that dies before that leaves the claim to expire, and the next one
//!   queues the same message id again (the run store skips a rule that
//!   already succeeded for it).

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::Result;

/// What kind of rule a batch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchKind {
    Coalesce,
    Join,
}

impl BatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchKind::Coalesce => "coalesce",
            BatchKind::Join => "join",
        }
    }

    fn parse(s: &str) -> BatchKind {
        if s == "join" {
            BatchKind::Join
        } else {
            BatchKind::Coalesce
        }
    }
}

/// When a batch is full and closes before its due time.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// `coalesce.max`: this many messages.
    Max(usize),
    /// A join: this many messages for each part.
    Parts(Vec<(String, u32)>),
}

/// One message for one rule's batch.
#[derive(Debug, Clone)]
pub struct BatchAdd {
    pub rule: String,
    pub key: String,
    pub kind: BatchKind,
    pub message_id: String,
    /// A join's part (the topic pattern the message counts for); "" for coalesce.
    pub part: String,
    /// The message as queued.
    pub message: Value,
    /// A new batch is due this long after its first message.
    pub window: Duration,
    pub limit: Limit,
    /// `mode = "latest"`: the message replaces the ones waiting, unless one
    /// of them was sent after it (see [`supersedes`]).
    pub latest: bool,
}

/// What adding a message did.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// It is in batch `batch`, which now holds `count` messages and closes at
    /// `due_at` (now, when it is `full`).
    Buffered { batch: String, count: u64, due_at: DateTime<Utc>, full: bool },
    /// It already was in `batch` (a redelivery).
    Duplicate { batch: String },
    /// A join for this key already closed (`outcome`: complete or timed_out);
    /// the message starts nothing.
    Late { outcome: String },
}

/// A batch claimed for closing.
#[derive(Debug, Clone, PartialEq)]
pub struct DueBatch {
    pub id: String,
    pub rule: String,
    pub key: String,
    pub kind: BatchKind,
    /// `full` / `window` (coalesce), `complete` / `timed_out` (join).
    pub outcome: String,
}

/// One message in a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchItem {
    pub part: String,
    pub message_id: String,
    pub message: Value,
}

/// A batch with its messages, in arrival order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Batch {
    pub id: String,
    pub rule: String,
    pub key: String,
    pub kind: BatchKind,
    pub state: String,
    pub outcome: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub items: Vec<BatchItem>,
}

/// An open batch as operators see it: what arrived so far, per part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenBatch {
    pub id: String,
    pub rule: String,
    pub key: String,
    pub kind: BatchKind,
    pub opened_at: DateTime<Utc>,
    /// When it closes (or closed: a due batch waits for a worker to claim it).
    pub due_at: DateTime<Utc>,
    /// Messages per part ("" for coalesce).
    pub arrived: Vec<(String, u64)>,
}

/// The stateful-rules half of the run store; every [`RunStore`](crate::RunStore) is one.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Adds a message to the open batch of its (rule, key), opening one if
    /// there is none; durable when this returns.
    async fn add_to_batch(&self, add: &BatchAdd) -> Result<Added>;

    /// Claims one batch that is due (or whose claimant died) for `lease`,
    /// closing it. `None` when nothing is due.
    async fn claim_due_batch(&self, claimant: &str, lease: Duration) -> Result<Option<DueBatch>>;

    /// The claimant queued the batch's message.
    async fn batch_sent(&self, id: &str) -> Result<()>;

    /// A batch and its messages (replaced ones left out).
    async fn batch(&self, id: &str) -> Result<Option<Batch>>;

    /// Every batch not yet queued (open, or closed by a claimant that has
    /// not queued it yet), soonest due first.
    async fn open_batches(&self) -> Result<Vec<OpenBatch>>;
}

// The statements both backends run, with `?N` placeholders (PostgreSQL gets
// `$N`), so they cannot disagree. Times are unix ms.

/// SQLite's; PostgreSQL's is the same with BIGINT for INTEGER.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relflow_batches (
    id            TEXT    PRIMARY KEY,
    rule          TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    opened_at     INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'open',
    outcome       TEXT,
    claimed_by    TEXT,
    claimed_until INTEGER,
    sent_at       INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS relflow_batches_open ON relflow_batches (rule, key) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS relflow_batches_unsent ON relflow_batches (due_at) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS relflow_batch_items (
    rule       TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    batch_id   TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    part       TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    replaced   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rule, message_id)
);
CREATE INDEX IF NOT EXISTS relflow_batch_items_batch ON relflow_batch_items (batch_id, seq);
";

/// ?1 rule, ?2 message id.
pub(crate) const FIND_ITEM: &str = "SELECT batch_id FROM relflow_batch_items WHERE rule = ?1 AND message_id = ?2";
/// ?1 rule, ?2 key.
pub(crate) const FIND_OPEN: &str =
    "SELECT id, due_at FROM relflow_batches WHERE rule = ?1 AND key = ?2 AND state = 'open'";
/// ?1 rule, ?2 key.
pub(crate) const FIND_CLOSED_JOIN: &str = "SELECT outcome FROM relflow_batches
     WHERE rule = ?1 AND key = ?2 AND kind = 'join' AND state = 'closed' ORDER BY opened_at DESC LIMIT 1";
/// ?1 id, ?2 rule, ?3 key, ?4 kind, ?5 opened at, ?6 due at.
pub(crate) const OPEN: &str =
    "INSERT INTO relflow_batches (id, rule, key, kind, opened_at, due_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// ?1 batch.
pub(crate) const NEXT_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) + 1 FROM relflow_batch_items WHERE batch_id = ?1";
/// ?1 batch.
pub(crate) const REPLACE_ALL: &str = "UPDATE relflow_batch_items SET replaced = 1 WHERE batch_id = ?1";
/// ?1 batch: the messages a `latest` batch holds now.
pub(crate) const WAITING: &str = "SELECT message FROM relflow_batch_items WHERE batch_id = ?1 AND replaced = 0";
/// ?1 rule, ?2 message id, ?3 batch, ?4 seq, ?5 part, ?6 message, ?7 replaced (0 or 1).
pub(crate) const INSERT_ITEM: &str =
    "INSERT INTO relflow_batch_items (rule, message_id, batch_id, seq, part, message, replaced)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/// ?1 batch: (part, messages).
pub(crate) const PART_COUNTS: &str = "SELECT part, COUNT(*) FROM relflow_batch_items
     WHERE batch_id = ?1 AND replaced = 0 GROUP BY part ORDER BY part";
/// ?1 now, ?2 outcome, ?3 batch.
pub(crate) const CLOSE_NOW: &str = "UPDATE relflow_batches SET due_at = ?1, outcome = ?2 WHERE id = ?3";

/// A batch that may be claimed at ?1 (now): due and open, or closed by a
/// claimant whose lease ran out before it queued the batch.
const CLAIMABLE: &str =
    "sent_at IS NULL AND ((state = 'open' AND due_at <= ?1) OR (state = 'closed' AND claimed_until < ?1))";

/// ?1 now, ?2 claimant, ?3 lease end. The outer condition repeats the inner
/// one so a second claimant waiting on the row lock (PostgreSQL) finds it
/// taken and claims nothing.
pub(crate) fn claim_sql() -> String {
    format!(
        "UPDATE relflow_batches SET state = 'closed', claimed_by = ?2, claimed_until = ?3,
             outcome = COALESCE(outcome, CASE kind WHEN 'join' THEN 'timed_out' ELSE 'window' END)
         WHERE id = (SELECT id FROM relflow_batches WHERE {CLAIMABLE} ORDER BY due_at LIMIT 1) AND {CLAIMABLE}
         RETURNING id, rule, key, kind, outcome"
    )
}

/// ?1 now, ?2 batch.
pub(crate) const SENT: &str = "UPDATE relflow_batches SET sent_at = ?1 WHERE id = ?2";
/// ?1 batch.
pub(crate) const GET: &str =
    "SELECT id, rule, key, kind, state, outcome, opened_at, due_at FROM relflow_batches WHERE id = ?1";
/// ?1 batch.
pub(crate) const ITEMS: &str =
    "SELECT part, message_id, message FROM relflow_batch_items WHERE batch_id = ?1 AND replaced = 0 ORDER BY seq";
pub(crate) const OPEN_BATCHES: &str =
    "SELECT b.id, b.rule, b.key, b.kind, b.opened_at, b.due_at, i.part, COUNT(i.message_id)
     FROM relflow_batches b LEFT JOIN relflow_batch_items i ON i.batch_id = b.id AND i.replaced = 0
     WHERE b.sent_at IS NULL
     GROUP BY b.id, b.rule, b.key, b.kind, b.opened_at, b.due_at, i.part
     ORDER BY b.due_at, b.id, i.part";

/// A new batch's id: derived from its first message, so it reads the same
/// in every log line and needs no id generator in the store.
pub(crate) fn batch_id(add: &BatchAdd) -> String {
    let key = crate::lock_key(&format!("{}\0{}\0{}", add.rule, add.key, add.message_id));
    key[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `new` replaces the `waiting` messages of a `latest` batch: it
/// does unless one of them was sent after it. A worker decides its
/// deliveries side by side, so the last one added is not always the last
/// one published; the publisher's `sent_at` is. Without it on both sides,
/// the last one added wins.
pub(crate) fn supersedes(new: &Value, waiting: &[Value]) -> bool {
    let sent = |m: &Value| m["sent_at"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let Some(new) = sent(new) else { return true };
    waiting.iter().all(|w| sent(w).is_none_or(|w| w <= new))
}

/// Whether a batch with these per-part counts (and `total` messages) is full.
pub(crate) fn is_full(limit: &Limit, counts: &[(String, i64)]) -> bool {
    match limit {
        Limit::Max(max) => counts.iter().map(|(_, n)| *n).sum::<i64>() >= *max as i64,
        Limit::Parts(parts) => {
            parts.iter().all(|(part, need)| counts.iter().any(|(p, n)| p == part && *n >= i64::from(*need)))
        }
    }
}

/// Why a full batch closed.
pub(crate) fn full_outcome(kind: BatchKind) -> &'static str {
    match kind {
        BatchKind::Coalesce => "full",
        BatchKind::Join => "complete",
    }
}

/// Rows of [`OPEN_BATCHES`] (one per batch and part) folded into batches.
pub(crate) fn fold_open(rows: Vec<(OpenBatch, Option<String>, i64)>) -> Vec<OpenBatch> {
    let mut out: Vec<OpenBatch> = Vec::new();
    for (batch, part, n) in rows {
        if out.last().is_none_or(|last| last.id != batch.id) {
            out.push(batch);
        }
        if let (Some(part), Some(last)) = (part, out.last_mut()) {
            last.arrived.push((part, n.max(0) as u64));
        }
    }
    out
}

pub(crate) fn kind(s: &str) -> BatchKind {
    BatchKind::parse(s)
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
