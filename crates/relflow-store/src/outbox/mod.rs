//! The outbox: relflow's run events, kept in the run store until each
//! destination (fedora-messaging, fedmsg, the work queue) has them.
//!
//! Exactly once, from the producer's side:
//!
//! * An event is written in the same transaction as the run state change it
//!   reports ([`RunStore::start_announced`], [`RunStore::finish_announced`]):
//!   a run recorded as finished always has its event, and an event never
//!   reports a change that was rolled back. A worker killed right after the
//!   commit leaves the event here, and whichever worker drains next sends it.
//! * One row per (event, destination), unique: writing the same event id
//!   again is a no-op, so a caller whose ids are deterministic (the engine
//!   derives them from the run, or for dead letters from the message, rule
//!   and attempt) can write after a crash without making a second event.
//! * A drainer claims the oldest unsent rows of one destination for a lease,
//!   publishes them in order and marks them sent only once the destination
//!   confirmed them. While any claim on a destination is live, nobody else
//!   claims there: events leave in the order they were written, and two
//!   drainers never publish the same one. A drainer that dies holds its
//!   claim until the lease runs out; then its rows are claimed again, and
//!   whatever it had already published goes out a second time with the same
//!   event id (consumers dedupe by it).
//! * A failed publish releases the rows with a retry time: the destination
//!   is held (for every drainer) until then, which is the backoff.
//! * Bounded: [`Outbox::prune_outbox`] drops sent rows after a while and the
//!   oldest unsent rows past a per-destination limit.
//!
//! [`RunStore::start_announced`]: crate::RunStore::start_announced
//! [`RunStore::finish_announced`]: crate::RunStore::finish_announced

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Result;

/// An event to announce, to each of `destinations`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewEvent {
    /// Unique per event; the message id it is published with.
    pub id: String,
    pub topic: String,
    /// The JSON body (the store does not look inside).
    pub body: Value,
    /// Headers to publish it with.
    pub headers: Map<String, Value>,
    /// Destination names (`amqp`, `fedmsg`, `queue`, ...), one row each.
    pub destinations: Vec<String>,
}

/// An unsent event, claimed for one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    /// Write order; events are handed out in it.
    pub seq: i64,
    pub id: String,
    pub destination: String,
    pub topic: String,
    pub body: Value,
    pub headers: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    /// Failed publishes so far.
    pub attempts: u32,
}

/// What is waiting for one destination, for `relflow status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backlog {
    pub destination: String,
    /// Events not yet sent there.
    pub pending: u64,
    /// When the oldest of them was written.
    pub oldest: Option<DateTime<Utc>>,
    /// Why the oldest could not be sent last time, if it failed.
    pub last_error: Option<String>,
}

/// The outbox half of the run store; every [`RunStore`](crate::RunStore) is one.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Writes events on their own (no run state change goes with them).
    /// An id already written for a destination is left as it is.
    async fn announce(&self, events: &[NewEvent]) -> Result<()>;

    /// Claims up to `limit` of the oldest unsent events for `destination`,
    /// for `lease`, oldest first. Empty when there are none, or while
    /// another claim (or a failed publish's retry time) holds the
    /// destination.
    async fn claim_events(
        &self,
        destination: &str,
        claimant: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<PendingEvent>>;

    /// Marks events sent to `destination` (the destination confirmed them).
    async fn events_sent(&self, destination: &str, ids: &[String]) -> Result<()>;

    /// Gives claimed events back unsent, with why, to be claimed again (by
    /// anyone) no sooner than `retry_at`.
    async fn release_events(
        &self,
        destination: &str,
        claimant: &str,
        ids: &[String],
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<()>;

    /// Unsent events per destination.
    async fn outbox_backlog(&self) -> Result<Vec<Backlog>>;

    /// Deletes events sent before `sent_before`, and per destination the
    /// oldest unsent events beyond the newest `max_pending`. Returns how many
    /// unsent events were dropped.
    async fn prune_outbox(&self, max_pending: u64, sent_before: DateTime<Utc>) -> Result<u64>;
}

// The statements both backends run, written once with `?N` placeholders
// (PostgreSQL gets `$N`, see `postgres::dialect`) so they cannot disagree.
// The table is `relflow_outbox` in both (the SQLite file is shared with the
// embedded queue, the PostgreSQL database maybe with other programs).

pub(crate) const INSERT: &str = "INSERT INTO relflow_outbox (event_id, destination, topic, body, headers, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (event_id, destination) DO NOTHING";

/// ?1 claimant, ?2 lease end, ?3 destination, ?4 limit, ?5 now.
pub(crate) const CLAIM: &str = "UPDATE relflow_outbox SET claimed_by = ?1, claimed_until = ?2
     WHERE seq IN (SELECT seq FROM relflow_outbox WHERE destination = ?3 AND sent_at IS NULL ORDER BY seq LIMIT ?4)
       AND NOT EXISTS (SELECT 1 FROM relflow_outbox
                       WHERE destination = ?3 AND sent_at IS NULL AND claimed_until >= ?5)
     RETURNING seq, event_id, destination, topic, body, headers, created_at, attempts";

/// ?1 now, ?2 destination, ?3 event id.
pub(crate) const SENT: &str = "UPDATE relflow_outbox SET sent_at = ?1, claimed_by = NULL, claimed_until = NULL
     WHERE destination = ?2 AND event_id = ?3";

/// ?1 retry time, ?2 error, ?3 destination, ?4 event id, ?5 claimant.
pub(crate) const RELEASE: &str = "UPDATE relflow_outbox
     SET claimed_by = NULL, claimed_until = ?1, attempts = attempts + 1, last_error = ?2
     WHERE destination = ?3 AND event_id = ?4 AND claimed_by = ?5";

pub(crate) const BACKLOG: &str = "SELECT destination, COUNT(*), MIN(created_at),
       (SELECT last_error FROM relflow_outbox h
        WHERE h.destination = o.destination AND h.sent_at IS NULL ORDER BY seq LIMIT 1)
     FROM relflow_outbox o WHERE sent_at IS NULL GROUP BY destination ORDER BY destination";

pub(crate) const PENDING_DESTINATIONS: &str = "SELECT DISTINCT destination FROM relflow_outbox WHERE sent_at IS NULL";

/// ?1 sent before.
pub(crate) const PRUNE_SENT: &str = "DELETE FROM relflow_outbox WHERE sent_at IS NOT NULL AND sent_at < ?1";

/// ?1 destination, ?2 how many unsent to keep.
pub(crate) const PRUNE_PENDING: &str = "DELETE FROM relflow_outbox
     WHERE destination = ?1 AND sent_at IS NULL AND seq <= (
         SELECT seq FROM relflow_outbox WHERE destination = ?1 AND sent_at IS NULL
         ORDER BY seq DESC LIMIT 1 OFFSET ?2)";

/// A stored JSON object, or an empty one if the row holds something else.
pub(crate) fn object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The lease end (or retry time) in unix ms, as times are stored.
pub(crate) fn until(lease: Duration) -> i64 {
    Utc::now().timestamp_millis().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}
