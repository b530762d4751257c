//! The run store: every playbook run relflow makes, kept for operators and
//! for the worker's own idempotence.
//!
//! The worker asks [`RunStore::has_succeeded`] before running a rule for a
//! message. Because the run is recorded before the message is acked, a crash
//! between the two makes the queue redeliver a message whose work is already
//! done, and this check is what keeps it from running twice.

pub mod approval;
pub mod audit;
pub mod control;
pub mod fleet;
pub mod outbox;
mod page;
mod pg_lock;
mod postgres;
mod reindex;
pub mod retention;
mod schema;
pub mod search;
mod sqlite;
pub mod state;
pub mod timers;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

pub use approval::Approvals;
pub use audit::{AuditEntry, AuditLog, NewAudit};
pub use control::{Control, HistoryEvent, Request, RequestKind};
pub use fleet::{Fleet, WorkerBeat, WorkerSeen};
pub use outbox::{Backlog, NewEvent, Outbox, PendingEvent};
pub use page::{Cursor, RuleCount, COUNT_CAP, MAX_OFFSET};
pub use postgres::PgStore;
pub use retention::{Prune, Retention};
pub use sqlite::SqliteStore;
pub use state::{Added, Batch, BatchAdd, BatchItem, BatchKind, DueBatch, Limit, OpenBatch, StateStore};
pub use timers::{TimerAdvance, TimerSlot, TimerState, TimerStore};

/// Where a run is, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    /// Stopped by relflow (worker shutdown past its drain timeout).
    Cancelled,
    /// Could not start (ansible-playbook missing, playbook missing, ...).
    Error,
    /// Its worker died mid-run; the message was redelivered and run again.
    Abandoned,
    /// Its rule has an approval gate: it waits for an approver (holding no
    /// worker slot; the message is acked).
    AwaitingApproval,
    /// An approver let it go: its work runs as a new run (`rerun_of` this one).
    Approved,
    /// An approver refused it, or its approval expired (the error says which).
    Denied,
}

impl RunStatus {
    pub const ALL: [RunStatus; 10] = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::TimedOut,
        RunStatus::Cancelled,
        RunStatus::Error,
        RunStatus::Abandoned,
        RunStatus::AwaitingApproval,
        RunStatus::Approved,
        RunStatus::Denied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Error => "error",
            RunStatus::Abandoned => "abandoned",
            RunStatus::AwaitingApproval => "awaiting_approval",
            RunStatus::Approved => "approved",
            RunStatus::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub message_id: String,
    pub topic: String,
    pub rule: String,
    pub playbook: String,
    pub attempt: u32,
    /// Which worker ran it (`host:pid`), for operators chasing a run.
    pub worker: String,
    /// The message as queued, so a run can be inspected and replayed later.
    pub message: serde_json::Value,
}

/// What a run of the message as queued (`message`) with `topic` is stored
/// with for finding it: its subject and its search terms.
pub(crate) fn indexed(topic: &str, message: &serde_json::Value) -> (String, Vec<String>) {
    let body = search::body(message).as_object().cloned().unwrap_or_default();
    let subject = relflow_core::subject(topic, &body);
    let terms = search::run_terms(message, &subject);
    (subject, terms)
}

/// A subject as stored: runs recorded before subjects were get the
/// topic's fallback.
pub(crate) fn stored_subject(subject: Option<String>, topic: &str) -> String {
    subject.unwrap_or_else(|| relflow_core::subject::fallback(topic))
}

/// Task counts over all hosts, as in ansible's recap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub ok: u32,
    pub changed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub unreachable: u32,
}

/// How a run ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub counts: TaskCounts,
    /// Per-task results (a JSON array; the runner defines the items).
    pub tasks: serde_json::Value,
    pub log: String,
    /// Why it did not succeed, in words.
    pub error: Option<String>,
}

/// One run as listed.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub message_id: String,
    pub topic: String,
    pub rule: String,
    pub playbook: String,
    pub attempt: u32,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: TaskCounts,
    pub error: Option<String>,
    pub worker: String,
    /// What the message was about, in one line ([`relflow_core::subject`]).
    pub subject: String,
}

/// One run with everything recorded about it.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub record: RunRecord,
    pub message: serde_json::Value,
    pub tasks: serde_json::Value,
    pub log: String,
}

/// Which runs to list: all filters are optional and combine with AND;
/// newest first (by start time, then id).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// A topic, or a topic pattern (`*` one word, `#` zero or more).
    pub topic: Option<String>,
    pub rule: Option<String>,
    pub status: Option<RunStatus>,
    pub message_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Words to find in the message body (see [`search`]): each must
    /// begin a term the run is indexed under.
    pub search: Option<String>,
    pub limit: usize,
    /// Rows to skip; at most [`MAX_OFFSET`] (deep pages use `cursor`).
    pub offset: usize,
    /// Start after this run (keyset pagination: as fast on page 1,000 as
    /// on page 1).
    pub cursor: Option<Cursor>,
}

/// How many runs started in one hour ended (or are) in one status; the web
/// page's "runs per hour" chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourlyCount {
    /// Start of the hour (UTC).
    pub hour: DateTime<Utc>,
    pub status: RunStatus,
    pub count: u64,
}

/// One condition of a [`RunFilter`], for a backend to render in its SQL
/// dialect: `column op ?` with the value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FilterValue {
    Text(String),
    /// Unix milliseconds, as times are stored.
    Millis(i64),
    /// A keyset position: `(started_at, id) < (ms, id)`.
    After(i64, String),
    /// The column is one of these (a topic pattern, resolved to the stored
    /// topics it matches).
    AnyOf(Vec<String>),
    /// The run is indexed under a term in `[from, to)`: one search word.
    Term(String, String),
}

impl RunFilter {
    /// The filter as `(column and operator, value)` pairs, ANDed together.
    /// Both backends build their WHERE clause from this, so they cannot
    /// disagree about what a filter means. `topics` are the stored topics
    /// a topic pattern matches ([`topic_pattern`](RunFilter::topic_pattern)).
    pub(crate) fn conditions(&self, topics: Option<Vec<String>>) -> Vec<(&'static str, FilterValue)> {
        let text = |v: &Option<String>| v.clone().map(FilterValue::Text);
        // A pattern that matches one stored topic lists like that exact topic: an index walk.
        let (exact_topic, topics) = match topics {
            Some(mut one) if one.len() == 1 => (one.pop().map(FilterValue::Text), None),
            Some(many) => (None, Some(many)),
            None => (text(&self.topic), None),
        };
        let words = self.search.as_deref().map(search::search_words).unwrap_or_default();
        let terms = words.into_iter().map(|w| {
            let (from, to) = page::prefix_range(&w);
            ("id", Some(FilterValue::Term(from, to)))
        });
        [
            ("topic =", exact_topic),
            ("topic", topics.map(FilterValue::AnyOf)),
            ("rule =", text(&self.rule)),
            ("status =", self.status.map(|s| FilterValue::Text(s.as_str().into()))),
            ("message_id =", text(&self.message_id)),
            ("started_at >=", self.since.map(|t| FilterValue::Millis(t.timestamp_millis()))),
            ("started_at <", self.until.map(|t| FilterValue::Millis(t.timestamp_millis()))),
            ("(started_at, id) <", self.cursor.clone().map(|c| FilterValue::After(c.started_at, c.id))),
        ]
        .into_iter()
        .chain(terms)
        .filter_map(|(clause, v)| Some((clause, v?)))
        .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("run store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the run store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("run id prefix {0:?} matches more than one run; give more characters")]
    Ambiguous(String),
    #[error("run store error: {0}")]
    Backend(String),
    #[error("{0}")]
    BadFilter(String),
    #[error("offset {0} is past {MAX_OFFSET}; page on with the `next` cursor instead")]
    OffsetTooDeep(usize),
    #[error("the run store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The SQLite files can no longer be written: going on would mean a
    /// SIGBUS (see `relflow_queue::file`), so the process must stop.
    #[error("run store unwritable: {0}")]
    Unwritable(#[from] relflow_queue::file::Unwritable),
}

impl StoreError {
    /// Whether retrying cannot help and the process has to stop (systemd
    /// restarts it once the files are writable again).
    pub fn is_fatal(&self) -> bool {
        matches!(self, StoreError::Unwritable(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where runs are recorded, the events that report them wait
/// ([`Outbox`]), operators' requests and messages' histories are kept
/// ([`Control`]), stateful rules and timers keep their state
/// ([`StateStore`], [`TimerStore`]), approval gates wait ([`Approvals`]),
/// old rows are pruned ([`Retention`]), the audit log ([`AuditLog`]), and
/// the workers' heartbeats ([`Fleet`]).
#[async_trait]
pub trait RunStore:
    Outbox + StateStore + TimerStore + Control + Approvals + Retention + AuditLog + Fleet + Send + Sync
{
    /// Records a run as started. Earlier runs of the same (message, rule)
    /// still marked running are marked abandoned: their worker died, which
    /// is why the message came back.
    async fn start(&self, run: &NewRun) -> Result<()> {
        self.start_announced(run, &[]).await
    }

    /// [`start`](RunStore::start), and writes `events` to the outbox in the
    /// same transaction: both happen or neither does.
    async fn start_announced(&self, run: &NewRun, events: &[NewEvent]) -> Result<()>;

    /// Records how run `id` ended.
    async fn finish(&self, id: &str, outcome: &RunOutcome) -> Result<()> {
        self.finish_announced(id, outcome, &[]).await
    }

    /// [`finish`](RunStore::finish), and writes `events` to the outbox in
    /// the same transaction.
    async fn finish_announced(&self, id: &str, outcome: &RunOutcome, events: &[NewEvent]) -> Result<()>;

    /// Whether `rule` already ran successfully for message `message_id`.
    async fn has_succeeded(&self, message_id: &str, rule: &str) -> Result<bool>;

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRecord>>;

    /// How many runs match `filter`, ignoring its `limit`, `offset` and
    /// `cursor` (the total behind a paginated list). Exact for filters on
    /// rule and status alone (read from maintained counters); otherwise
    /// counted up to [`COUNT_CAP`] + 1, so a result above [`COUNT_CAP`]
    /// means "more than that".
    async fn count(&self, filter: &RunFilter) -> Result<u64>;

    /// Runs per (rule, status), from counters kept up to date by every
    /// write: the rules page and `relflow status` without counting rows.
    async fn summary(&self) -> Result<Vec<RuleCount>>;

    /// Runs started in the hour of `since` or later, counted per hour and
    /// status, oldest hour first. Hours without runs are left out.
    async fn runs_per_hour(&self, since: DateTime<Utc>) -> Result<Vec<HourlyCount>>;

    /// A run by id, or by a unique prefix of its id.
    async fn get(&self, id: &str) -> Result<Option<RunDetail>>;

    /// Counts a message that matched no rule (acked as a no-op, not a run).
    async fn count_noop(&self) -> Result<()>;

    /// Counts `n` no-ops in one write. The worker batches them in memory:
    /// one synced store write per no-op capped no-op throughput (see
    /// docs/performance.md).
    async fn count_noops(&self, n: u64) -> Result<()> {
        for _ in 0..n {
            self.count_noop().await?;
        }
        Ok(())
    }

    /// How many messages were acked as no-ops.
    async fn noop_count(&self) -> Result<u64>;

    /// Waits until no other worker holds `name`, then holds it until the
    /// guard is dropped. Rules in one `concurrency_group` take this lock, so
    /// they never overlap even across worker processes and hosts: the run
    /// store is the one thing all workers share. A worker that dies releases
    /// its locks (the OS drops its file locks; PostgreSQL its session's).
    /// On PostgreSQL a holder keeps its lock across a database restart, and
    /// waiting for a lock waits the restart out (see `pg_lock`).
    async fn lock(&self, name: &str) -> Result<LockGuard>;

    /// The lock a worker holds while it checks for, runs and records the
    /// run of `rule` for `message_id`: a second copy of the message on
    /// another worker (redelivered after a lost channel, or published twice
    /// after a lost confirm) waits, then finds the first one's success.
    async fn lock_run(&self, message_id: &str, rule: &str) -> Result<LockGuard> {
        // \u{1f} cannot appear in a rule name, so no group name collides.
        self.lock(&format!("relflow-run\u{1f}{message_id}\u{1f}{rule}")).await
    }
}

/// Holds a [`RunStore::lock`] until dropped.
pub struct LockGuard {
    _held: Box<dyn Send + Sync>,
}

impl LockGuard {
    pub(crate) fn new(held: impl Send + Sync + 'static) -> LockGuard {
        LockGuard { _held: Box::new(held) }
    }
}

/// A stored time (unix ms) as a time.
pub(crate) fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A lock name as a fixed-size key (file name, advisory lock id): names can
/// be anything a CEL expression returns.
pub(crate) fn lock_key(name: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(name.as_bytes()).into()
}
