//! The outbox in the SQLite run store: a table beside `runs`, written in the
//! same transactions.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Row, Transaction};

use super::{Backlog, NewEvent, Outbox, PendingEvent};
use crate::sqlite::SqliteStore;
use crate::{time, Result};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relflow_outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT    NOT NULL,
    destination   TEXT    NOT NULL,
    topic         TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    headers       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,   -- unix ms
    claimed_by    TEXT,
    claimed_until INTEGER,
    sent_at       INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    UNIQUE (event_id, destination)
);
CREATE INDEX IF NOT EXISTS relflow_outbox_pending ON relflow_outbox (destination, seq) WHERE sent_at IS NULL;
";

/// Writes `events` inside the caller's transaction.
pub(crate) fn insert(tx: &Transaction<'_>, events: &[NewEvent]) -> rusqlite::Result<()> {
    let now = Utc::now().timestamp_millis();
    let mut stmt = tx.prepare_cached(super::INSERT)?;
    for e in events {
        let headers = serde_json::Value::Object(e.headers.clone()).to_string();
        for d in &e.destinations {
            stmt.execute(params![e.id, d, e.topic, e.body.to_string(), headers, now])?;
        }
    }
    Ok(())
}

fn pending(r: &Row<'_>) -> rusqlite::Result<PendingEvent> {
    let body: String = r.get(4)?;
    let headers: String = r.get(5)?;
    Ok(PendingEvent {
        seq: r.get(0)?,
        id: r.get(1)?,
        destination: r.get(2)?,
        topic: r.get(3)?,
        body: serde_json::from_str(&body).unwrap_or_default(),
        headers: super::object(&headers),
        created_at: time(r.get(6)?),
        attempts: r.get(7)?,
    })
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn announce(&self, events: &[NewEvent]) -> Result<()> {
        let events = events.to_vec();
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            insert(&tx, &events)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn claim_events(
        &self,
        destination: &str,
        claimant: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<PendingEvent>> {
        let (destination, claimant) = (destination.to_owned(), claimant.to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(move |c| {
            // One statement, so SQLite's write lock makes it atomic among workers.
            let now = Utc::now().timestamp_millis();
            let mut stmt = c.prepare_cached(super::CLAIM)?;
            let rows = stmt.query_map(params![claimant, super::until(lease), destination, limit, now], pending)?;
            let mut events = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            events.sort_by_key(|e| e.seq);
            Ok(events)
        })
        .await
    }

    async fn events_sent(&self, destination: &str, ids: &[String]) -> Result<()> {
        let (destination, ids) = (destination.to_owned(), ids.to_vec());
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            let now = Utc::now().timestamp_millis();
            for id in &ids {
                tx.execute(super::SENT, params![now, destination, id])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn release_events(
        &self,
        destination: &str,
        claimant: &str,
        ids: &[String],
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<()> {
        let (destination, claimant, ids, error) =
            (destination.to_owned(), claimant.to_owned(), ids.to_vec(), error.to_owned());
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            for id in &ids {
                tx.execute(super::RELEASE, params![retry_at.timestamp_millis(), error, destination, id, claimant])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn outbox_backlog(&self) -> Result<Vec<Backlog>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(super::BACKLOG)?;
            let rows = stmt.query_map([], |r| {
                Ok(Backlog {
                    destination: r.get(0)?,
                    pending: r.get::<_, i64>(1)?.max(0) as u64,
                    oldest: r.get::<_, Option<i64>>(2)?.map(time),
                    last_error: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn prune_outbox(&self, max_pending: u64, sent_before: DateTime<Utc>) -> Result<u64> {
        let keep = i64::try_from(max_pending).unwrap_or(i64::MAX);
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            tx.execute(super::PRUNE_SENT, [sent_before.timestamp_millis()])?;
            let destinations: Vec<String> = tx
                .prepare(super::PENDING_DESTINATIONS)?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut dropped = 0;
            for d in destinations {
                dropped += tx.execute(super::PRUNE_PENDING, params![d, keep])? as u64;
            }
            tx.commit()?;
            Ok(dropped)
        })
        .await
    }
}
