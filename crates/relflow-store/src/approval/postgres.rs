//! Approval gates in the PostgreSQL run store: the statements of `super`
//! in PostgreSQL's placeholder dialect.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{decided_status, on, Approvals};
use crate::postgres::dialect;
use crate::postgres::{pg, PgStore};
use crate::{time, NewRun, Request, Result, RunStatus};

const RUNS: &str = "relflow_runs";

/// `sql` for PostgreSQL's runs table and placeholders.
fn sql(s: &str) -> String {
    dialect(&on(s, RUNS))
}

#[async_trait]
impl Approvals for PgStore {
    async fn await_approval(&self, run: &NewRun, expires_at: DateTime<Utc>) -> Result<bool> {
        let indexed = crate::indexed(&run.topic, &run.message);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Copies of one message are handled one at a time per worker, but two
        // workers may hold copies: serialize on (message, rule).
        let key = format!("approval:{}:{}", run.message_id, run.rule);
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&key]).await.map_err(pg)?;
        if tx.query_opt(&sql(super::WAITING), &[&run.message_id, &run.rule]).await.map_err(pg)?.is_some() {
            return Ok(false);
        }
        crate::postgres::insert_run(&tx, run, RunStatus::AwaitingApproval, &indexed).await?;
        tx.execute(&sql(super::INSERT_GATE), &[&run.id, &run.message_id, &run.rule, &expires_at.timestamp_millis()])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    async fn decide(&self, r: &Request, why: Option<&str>) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let status = decided_status(r.kind).as_str();
        let now = Utc::now().timestamp_millis();
        if tx.execute(&sql(super::CLAIM), &[&status, &now, &why, &r.run_id]).await.map_err(pg)? == 0 {
            return Ok(false);
        }
        tx.execute(
            &dialect(crate::control::INSERT_REQUEST),
            &[&r.id, &r.kind.as_str(), &r.run_id, &r.message_id, &r.rule, &r.by, &r.at.timestamp_millis()],
        )
        .await
        .map_err(pg)?;
        crate::control::postgres::insert_event(&tx, &crate::control::request_event(r)).await?;
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    async fn expired(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client.query(&sql(super::EXPIRED), &[&now.timestamp_millis(), &(limit as i64)]).await.map_err(pg)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn expires_at(&self, run_id: &str) -> Result<Option<DateTime<Utc>>> {
        let client = self.client().await?;
        let row = client.query_opt(&dialect(super::EXPIRES_AT), &[&run_id]).await.map_err(pg)?;
        Ok(row.map(|r| time(r.get(0))))
    }
}
