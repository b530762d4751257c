//! The audit log: who changed what, when and from where, kept in the run
//! store so every worker and `relflow serve` on every host writes one log.
//!
//! Append-only, in write order (`seq`); nothing in relflow updates or
//! deletes a row. A refused attempt (a token whose role does not allow the
//! action) is written too: "who tried" matters as much as "who did".

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use crate::postgres::{pg, PgStore};
use crate::sqlite::SqliteStore;
use crate::{time, Result};

/// One mutation, as the caller knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    /// The token's name (HTTP) or `user@host` (CLI).
    pub who: String,
    /// The token's role, or `cli`.
    pub role: String,
    /// What was done: `publish`, `replay`, `purge`, `approve`, ...
    pub action: String,
    /// What it was done to (a run or dead-letter id, a topic), or empty.
    pub target: String,
    /// The peer address (HTTP) or `cli`.
    pub peer: String,
    /// `ok`, `denied`, or `failed: <status>`.
    pub outcome: String,
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub who: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub peer: String,
    pub outcome: String,
}

/// The audit half of the run store; every [`RunStore`](crate::RunStore) is one.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one entry, stamped with the current time.
    async fn audit(&self, entry: &NewAudit) -> Result<()>;

    /// The newest `limit` entries (0: all) at or after `since` (`None`: ever), oldest first.
    async fn audit_log(&self, since: Option<DateTime<Utc>>, limit: usize) -> Result<Vec<AuditEntry>>;
}

pub(crate) const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relflow_audit (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,   -- unix ms
    who     TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL,
    target  TEXT NOT NULL, peer TEXT NOT NULL, outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS relflow_audit_at ON relflow_audit (at);
";

pub(crate) const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relflow_audit (
    seq     BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,    -- unix ms
    who     TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL,
    target  TEXT NOT NULL, peer TEXT NOT NULL, outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS relflow_audit_at ON relflow_audit (at);
";

// One statement text for both backends (`?N` becomes `$N` for PostgreSQL).
const INSERT: &str = "INSERT INTO relflow_audit (at, who, role, action, target, peer, outcome)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/// ?1 since (unix ms), ?2 limit.
const SELECT: &str = "SELECT * FROM (SELECT seq, at, who, role, action, target, peer, outcome FROM relflow_audit
     WHERE at >= ?1 ORDER BY seq DESC LIMIT ?2) newest ORDER BY seq";

fn bounds(since: Option<DateTime<Utc>>, limit: usize) -> (i64, i64) {
    let limit = if limit == 0 { i64::MAX } else { i64::try_from(limit).unwrap_or(i64::MAX) };
    (since.map_or(i64::MIN, |t| t.timestamp_millis()), limit)
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn audit(&self, e: &NewAudit) -> Result<()> {
        let e = e.clone();
        self.with_conn(move |c| {
            let now = Utc::now().timestamp_millis();
            c.execute(INSERT, params![now, e.who, e.role, e.action, e.target, e.peer, e.outcome])?;
            Ok(())
        })
        .await
    }

    async fn audit_log(&self, since: Option<DateTime<Utc>>, limit: usize) -> Result<Vec<AuditEntry>> {
        let (since, limit) = bounds(since, limit);
        self.with_conn(move |c| {
            let mut stmt = c.prepare_cached(SELECT)?;
            let rows = stmt.query_map(params![since, limit], |r| {
                Ok(AuditEntry {
                    seq: r.get(0)?,
                    at: time(r.get(1)?),
                    who: r.get(2)?,
                    role: r.get(3)?,
                    action: r.get(4)?,
                    target: r.get(5)?,
                    peer: r.get(6)?,
                    outcome: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}

#[async_trait]
impl AuditLog for PgStore {
    async fn audit(&self, e: &NewAudit) -> Result<()> {
        let client = self.client().await?;
        let now = Utc::now().timestamp_millis();
        client
            .execute(&INSERT.replace('?', "$"), &[&now, &e.who, &e.role, &e.action, &e.target, &e.peer, &e.outcome])
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn audit_log(&self, since: Option<DateTime<Utc>>, limit: usize) -> Result<Vec<AuditEntry>> {
        let (since, limit) = bounds(since, limit);
        let client = self.client().await?;
        let rows = client.query(&SELECT.replace('?', "$"), &[&since, &limit]).await.map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                seq: r.get(0),
                at: time(r.get(1)),
                who: r.get(2),
                role: r.get(3),
                action: r.get(4),
                target: r.get(5),
                peer: r.get(6),
                outcome: r.get(7),
            })
            .collect())
    }
}
