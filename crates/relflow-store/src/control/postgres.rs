//! Requests and history in the PostgreSQL run store: the statements of
//! `super`, in PostgreSQL's placeholder dialect.

use async_trait::async_trait;
use chrono::Utc;
use tokio_postgres::{GenericClient, Row};

use super::{Control, HistoryEvent, Request, RequestKind};
use crate::postgres::{dialect, pg, PgStore};
use crate::{time, Result};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relflow_requests (
    id           TEXT PRIMARY KEY,
    kind         TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    requested_by TEXT    NOT NULL,
    requested_at BIGINT  NOT NULL,   -- unix ms
    taken_at     BIGINT,
    new_run_id   TEXT
);
CREATE INDEX IF NOT EXISTS relflow_requests_new_run ON relflow_requests (new_run_id);
CREATE TABLE IF NOT EXISTS relflow_history (
    seq        BIGSERIAL PRIMARY KEY,
    message_id TEXT    NOT NULL,
    at         BIGINT  NOT NULL,   -- unix ms
    kind       TEXT    NOT NULL,
    attempt    INTEGER,
    by_whom    TEXT,
    run_id     TEXT,
    detail     TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS relflow_history_message ON relflow_history (message_id, seq);
";

fn request(r: &Row) -> Request {
    Request {
        id: r.get(0),
        kind: RequestKind::parse(r.get(1)),
        run_id: r.get(2),
        message_id: r.get(3),
        rule: r.get(4),
        by: r.get(5),
        at: time(r.get(6)),
    }
}

fn event(r: &Row) -> HistoryEvent {
    HistoryEvent {
        message_id: r.get(0),
        at: time(r.get(1)),
        kind: r.get(2),
        attempt: r.get::<_, Option<i32>>(3).map(|a| a.max(0) as u32),
        by: r.get(4),
        run_id: r.get(5),
        detail: r.get(6),
    }
}

pub(crate) async fn insert_event(c: &impl GenericClient, e: &HistoryEvent) -> Result<()> {
    let attempt = e.attempt.map(|a| a as i32);
    c.execute(
        &dialect(super::INSERT_EVENT),
        &[&e.message_id, &e.at.timestamp_millis(), &e.kind, &attempt, &e.by, &e.run_id, &e.detail],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

#[async_trait]
impl Control for PgStore {
    async fn request(&self, r: &Request) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let added = tx
            .execute(
                &dialect(super::INSERT_REQUEST),
                &[&r.id, &r.kind.as_str(), &r.run_id, &r.message_id, &r.rule, &r.by, &r.at.timestamp_millis()],
            )
            .await
            .map_err(pg)?
            == 1;
        if added {
            insert_event(&tx, &super::request_event(r)).await?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(added)
    }

    async fn take_rerun(&self, id: &str, message_id: &str, new_run_id: &str) -> Result<Option<Request>> {
        let client = self.client().await?;
        let now = Utc::now().timestamp_millis();
        let row =
            client.query_opt(&dialect(super::TAKE_RERUN), &[&now, &new_run_id, &id, &message_id]).await.map_err(pg)?;
        Ok(row.as_ref().map(request))
    }

    async fn cancel_requested(&self, run_id: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = client.query_opt(&dialect(super::CANCEL_REQUESTED), &[&run_id]).await.map_err(pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn rerun_of(&self, run_id: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = client.query_opt(&dialect(super::RERUN_OF), &[&run_id]).await.map_err(pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn record_event(&self, e: &HistoryEvent) -> Result<()> {
        let client = self.client().await?;
        insert_event(&*client, e).await
    }

    async fn history(&self, message_id: &str) -> Result<Vec<HistoryEvent>> {
        let client = self.client().await?;
        let rows = client.query(&dialect(super::HISTORY), &[&message_id]).await.map_err(pg)?;
        Ok(rows.iter().map(event).collect())
    }
}
