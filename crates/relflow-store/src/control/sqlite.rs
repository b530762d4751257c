//! Requests and history in the SQLite run store.

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{params, OptionalExtension, Row};

use super::{Control, HistoryEvent, Request, RequestKind};
use crate::sqlite::SqliteStore;
use crate::{time, Result};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relflow_requests (
    id           TEXT PRIMARY KEY,
    kind         TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    requested_by TEXT    NOT NULL,
    requested_at INTEGER NOT NULL,   -- unix ms
    taken_at     INTEGER,
    new_run_id   TEXT
);
CREATE INDEX IF NOT EXISTS relflow_requests_new_run ON relflow_requests (new_run_id);
CREATE TABLE IF NOT EXISTS relflow_history (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT    NOT NULL,
    at         INTEGER NOT NULL,   -- unix ms
    kind       TEXT    NOT NULL,
    attempt    INTEGER,
    by_whom    TEXT,
    run_id     TEXT,
    detail     TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS relflow_history_message ON relflow_history (message_id, seq);
";

fn request(r: &Row<'_>) -> rusqlite::Result<Request> {
    Ok(Request {
        id: r.get(0)?,
        kind: RequestKind::parse(&r.get::<_, String>(1)?),
        run_id: r.get(2)?,
        message_id: r.get(3)?,
        rule: r.get(4)?,
        by: r.get(5)?,
        at: time(r.get(6)?),
    })
}

fn event(r: &Row<'_>) -> rusqlite::Result<HistoryEvent> {
    Ok(HistoryEvent {
        message_id: r.get(0)?,
        at: time(r.get(1)?),
        kind: r.get(2)?,
        attempt: r.get(3)?,
        by: r.get(4)?,
        run_id: r.get(5)?,
        detail: r.get(6)?,
    })
}

pub(crate) fn insert_event(c: &rusqlite::Connection, e: &HistoryEvent) -> rusqlite::Result<()> {
    c.prepare_cached(super::INSERT_EVENT)?.execute(params![
        e.message_id,
        e.at.timestamp_millis(),
        e.kind,
        e.attempt,
        e.by,
        e.run_id,
        e.detail
    ])?;
    Ok(())
}

#[async_trait]
impl Control for SqliteStore {
    async fn request(&self, r: &Request) -> Result<bool> {
        let r = r.clone();
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            let added = tx.execute(
                super::INSERT_REQUEST,
                params![r.id, r.kind.as_str(), r.run_id, r.message_id, r.rule, r.by, r.at.timestamp_millis()],
            )? == 1;
            if added {
                insert_event(&tx, &super::request_event(&r))?;
            }
            tx.commit()?;
            Ok(added)
        })
        .await
    }

    async fn take_rerun(&self, id: &str, message_id: &str, new_run_id: &str) -> Result<Option<Request>> {
        let (id, m, new) = (id.to_owned(), message_id.to_owned(), new_run_id.to_owned());
        self.with_conn(move |c| {
            let now = Utc::now().timestamp_millis();
            Ok(c.query_row(super::TAKE_RERUN, params![now, new, id, m], request).optional()?)
        })
        .await
    }

    async fn cancel_requested(&self, run_id: &str) -> Result<Option<String>> {
        let run_id = run_id.to_owned();
        self.with_conn(move |c| Ok(c.query_row(super::CANCEL_REQUESTED, [run_id], |r| r.get(0)).optional()?)).await
    }

    async fn rerun_of(&self, run_id: &str) -> Result<Option<String>> {
        let run_id = run_id.to_owned();
        self.with_conn(move |c| Ok(c.query_row(super::RERUN_OF, [run_id], |r| r.get(0)).optional()?)).await
    }

    async fn record_event(&self, e: &HistoryEvent) -> Result<()> {
        let e = e.clone();
        self.with_conn(move |c| Ok(insert_event(c, &e)?)).await
    }

    async fn history(&self, message_id: &str) -> Result<Vec<HistoryEvent>> {
        let m = message_id.to_owned();
        self.with_conn(move |c| {
            let mut stmt = c.prepare_cached(super::HISTORY)?;
            let rows = stmt.query_map([m], event)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}
