//! State of `[[timer]]`s, kept in the run store so every worker on every
//! host agrees on which slot fired: exactly one message per slot.
//!
//! * `relflow_timers` holds each timer's newest slot handled (fired, or
//!   passed over by `catch_up`). A worker that finds slots due after it
//!   moves it forward with a compare-and-set ([`TimerStore::advance_timer`]):
//!   one worker wins, and in the same transaction claims the slots it
//!   fires. The losers claim nothing.
//! * `relflow_timer_slots` holds each claimed slot, (timer, slot) unique.
//!   The claimant queues its message and marks it sent; a claimant that
//!   dies before that leaves its lease to run out, and the next worker
//!   queues the same message id again ([`TimerStore::claim_stale_slot`]).
//!   The run store skips a rule that already succeeded for that id, so a
//!   slot queued twice still runs once.
//! * Queued slots are kept [`SLOTS_KEPT`] (the runs and the audit log keep
//!   the history); the worker that advances a timer drops its older ones.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

/// How long a queued slot stays in `relflow_timer_slots`.
pub const SLOTS_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

/// One slot of one timer: a scheduled one (`slot` is its time) or an
/// operator's `relflow timers fire` (its own id, so it never collides).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimerSlot {
    pub timer: String,
    pub slot: String,
    pub scheduled_at: DateTime<Utc>,
    /// When it was first claimed; kept when another worker queues it again.
    pub fired_at: DateTime<Utc>,
    /// Fired by an operator, not by the schedule.
    pub manual: bool,
}

/// Moving a timer's last handled slot from `from` to `to`, firing `fire`.
#[derive(Debug, Clone)]
pub struct TimerAdvance {
    pub timer: String,
    /// What the caller read; `None`: the timer was never seen.
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
    /// The slots to claim (at most those in (`from`, `to`]).
    pub fire: Vec<TimerSlot>,
    pub claimant: String,
    /// How long the claimant has to queue them before another worker may.
    pub lease: Duration,
}

/// A timer as the store knows it (`relflow timers list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimerState {
    pub name: String,
    /// The newest scheduled slot handled; `None`: only operators fired it.
    pub last_slot: Option<DateTime<Utc>>,
    /// The slot fired last (scheduled or manual), if any.
    pub last_fire: Option<TimerSlot>,
}

/// The timers half of the run store; every [`RunStore`](crate::RunStore) is one.
#[async_trait]
pub trait TimerStore: Send + Sync {
    /// The newest slot handled for `timer`; `None`: never seen.
    async fn timer_last_slot(&self, timer: &str) -> Result<Option<DateTime<Utc>>>;

    /// Compare-and-set of the last slot, claiming `fire` with it (and
    /// dropping the timer's slots queued over [`SLOTS_KEPT`] ago). `None`:
    /// another worker moved it first, and nothing was claimed.
    async fn advance_timer(&self, advance: &TimerAdvance) -> Result<Option<Vec<TimerSlot>>>;

    /// Claims an operator's fire (a slot of its own) for `lease`.
    async fn claim_fire(&self, slot: &TimerSlot, claimant: &str, lease: Duration) -> Result<()>;

    /// Claims one slot whose claimant's lease ran out before it was queued.
    async fn claim_stale_slot(&self, claimant: &str, lease: Duration) -> Result<Option<TimerSlot>>;

    /// The slot's message is on the work queue.
    async fn slot_sent(&self, timer: &str, slot: &str) -> Result<()>;

    /// Every timer the store has seen, by name.
    async fn timer_states(&self) -> Result<Vec<TimerState>>;
}

// The statements both backends run, with `?N` placeholders (PostgreSQL gets
// `$N`), so they cannot disagree. Times are unix ms.

/// SQLite's; PostgreSQL's is the same with BIGINT for INTEGER.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relflow_timers (
    name      TEXT    PRIMARY KEY,
    last_slot INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS relflow_timer_slots (
    timer         TEXT    NOT NULL,
    slot          TEXT    NOT NULL,
    scheduled_at  INTEGER NOT NULL,
    fired_at      INTEGER NOT NULL,
    manual        INTEGER NOT NULL,
    claimed_by    TEXT    NOT NULL,
    claimed_until INTEGER NOT NULL,
    sent_at       INTEGER,
    PRIMARY KEY (timer, slot)
);
CREATE INDEX IF NOT EXISTS relflow_timer_slots_unsent ON relflow_timer_slots (claimed_until) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS relflow_timer_slots_fired ON relflow_timer_slots (timer, fired_at);
";

/// ?1 timer.
pub(crate) const LAST: &str = "SELECT last_slot FROM relflow_timers WHERE name = ?1";
/// ?1 timer, ?2 last slot: the first worker to see a timer.
pub(crate) const FIRST_SEEN: &str =
    "INSERT INTO relflow_timers (name, last_slot) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING";
/// ?1 timer, ?2 the last slot the caller read, ?3 the new one.
pub(crate) const ADVANCE: &str = "UPDATE relflow_timers SET last_slot = ?3 WHERE name = ?1 AND last_slot = ?2";
/// ?1 timer, ?2 slot, ?3 scheduled at, ?4 fired at, ?5 manual, ?6 claimant, ?7 lease end.
pub(crate) const CLAIM: &str = "INSERT INTO relflow_timer_slots
     (timer, slot, scheduled_at, fired_at, manual, claimed_by, claimed_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (timer, slot) DO NOTHING";

/// A slot that may be claimed again at ?1 (now).
const STALE: &str = "sent_at IS NULL AND claimed_until < ?1";

/// ?1 now, ?2 claimant, ?3 lease end. The outer condition repeats the inner
/// one so a second claimant waiting on the row lock (PostgreSQL) finds it
/// taken and claims nothing.
pub(crate) fn reclaim_sql() -> String {
    format!(
        "UPDATE relflow_timer_slots SET claimed_by = ?2, claimed_until = ?3
         WHERE (timer, slot) IN (SELECT timer, slot FROM relflow_timer_slots WHERE {STALE}
                                 ORDER BY scheduled_at LIMIT 1) AND {STALE}
         RETURNING timer, slot, scheduled_at, fired_at, manual"
    )
}

/// ?1 timer, ?2 oldest fired_at kept.
pub(crate) const PRUNE: &str =
    "DELETE FROM relflow_timer_slots WHERE timer = ?1 AND sent_at IS NOT NULL AND fired_at < ?2";

/// ?1 timer, ?2 slot, ?3 now.
pub(crate) const SENT: &str = "UPDATE relflow_timer_slots SET sent_at = ?3 WHERE timer = ?1 AND slot = ?2";
/// Timers a worker handled, and timers only an operator fired.
pub(crate) const STATES: &str = "SELECT name, MAX(last_slot) FROM
     (SELECT name, last_slot FROM relflow_timers UNION ALL SELECT DISTINCT timer, CAST(NULL AS BIGINT) FROM relflow_timer_slots) seen
     GROUP BY name ORDER BY name";
/// ?1 timer.
pub(crate) const LAST_FIRE: &str = "SELECT timer, slot, scheduled_at, fired_at, manual FROM relflow_timer_slots
     WHERE timer = ?1 ORDER BY fired_at DESC, scheduled_at DESC LIMIT 1";

/// The oldest `fired_at` [`PRUNE`] keeps.
pub(crate) fn kept_since() -> i64 {
    crate::state::now_ms().saturating_sub(crate::state::ms(SLOTS_KEPT))
}

pub(crate) fn lease_end(lease: Duration) -> i64 {
    crate::state::now_ms().saturating_add(crate::state::ms(lease))
}
