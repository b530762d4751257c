//! The outbox in the PostgreSQL run store: the same statements as SQLite
//! (`super::*`), in PostgreSQL's placeholder dialect.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::{Row, Transaction};

use super::{Backlog, NewEvent, Outbox, PendingEvent};
use crate::postgres::{dialect, pg, PgStore};
use crate::{time, Result};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relflow_outbox (
    seq           BIGSERIAL PRIMARY KEY,
    event_id      TEXT    NOT NULL,
    destination   TEXT    NOT NULL,
    topic         TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    headers       TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,   -- unix ms
    claimed_by    TEXT,
    claimed_until BIGINT,
    sent_at       BIGINT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    UNIQUE (event_id, destination)
);
CREATE INDEX IF NOT EXISTS relflow_outbox_pending ON relflow_outbox (destination, seq) WHERE sent_at IS NULL;
";

/// Writes `events` inside the caller's transaction.
pub(crate) async fn insert(tx: &Transaction<'_>, events: &[NewEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let now = Utc::now().timestamp_millis();
    let stmt = tx.prepare(&dialect(super::INSERT)).await.map_err(pg)?;
    for e in events {
        let (body, headers) = (e.body.to_string(), serde_json::Value::Object(e.headers.clone()).to_string());
        for d in &e.destinations {
            tx.execute(&stmt, &[&e.id, d, &e.topic, &body, &headers, &now]).await.map_err(pg)?;
        }
    }
    Ok(())
}

fn pending(r: &Row) -> PendingEvent {
    PendingEvent {
        seq: r.get(0),
        id: r.get(1),
        destination: r.get(2),
        topic: r.get(3),
        body: serde_json::from_str(r.get(4)).unwrap_or_default(),
        headers: super::object(r.get(5)),
        created_at: time(r.get(6)),
        attempts: r.get::<_, i32>(7).max(0) as u32,
    }
}

/// Serializes claims on one destination across connections: without it two
/// claims could both see no live claim and take different rows.
fn destination_lock(destination: &str) -> i64 {
    let key = crate::lock_key(&format!("relflow outbox {destination}"));
    i64::from_be_bytes(key[..8].try_into().unwrap_or_default())
}

#[async_trait]
impl Outbox for PgStore {
    async fn announce(&self, events: &[NewEvent]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        insert(&tx, events).await?;
        tx.commit().await.map_err(pg)
    }

    async fn claim_events(
        &self,
        destination: &str,
        claimant: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<PendingEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&destination_lock(destination)]).await.map_err(pg)?;
        let now = Utc::now().timestamp_millis();
        let rows = tx
            .query(&dialect(super::CLAIM), &[&claimant, &super::until(lease), &destination, &limit, &now])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        let mut events: Vec<PendingEvent> = rows.iter().map(pending).collect();
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    async fn events_sent(&self, destination: &str, ids: &[String]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let now = Utc::now().timestamp_millis();
        for id in ids {
            tx.execute(&dialect(super::SENT), &[&now, &destination, id]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn release_events(
        &self,
        destination: &str,
        claimant: &str,
        ids: &[String],
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let at = retry_at.timestamp_millis();
        for id in ids {
            tx.execute(&dialect(super::RELEASE), &[&at, &error, &destination, id, &claimant]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn outbox_backlog(&self) -> Result<Vec<Backlog>> {
        let client = self.client().await?;
        let rows = client.query(super::BACKLOG, &[]).await.map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| Backlog {
                destination: r.get(0),
                pending: r.get::<_, i64>(1).max(0) as u64,
                oldest: r.get::<_, Option<i64>>(2).map(time),
                last_error: r.get(3),
            })
            .collect())
    }

    async fn prune_outbox(&self, max_pending: u64, sent_before: DateTime<Utc>) -> Result<u64> {
        let keep = i64::try_from(max_pending).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute(&dialect(super::PRUNE_SENT), &[&sent_before.timestamp_millis()]).await.map_err(pg)?;
        let destinations: Vec<String> =
            tx.query(super::PENDING_DESTINATIONS, &[]).await.map_err(pg)?.iter().map(|r| r.get(0)).collect();
        let mut dropped = 0;
        for d in destinations {
            dropped += tx.execute(&dialect(super::PRUNE_PENDING), &[&d, &keep]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(dropped)
    }
}
