//! Approval gates in the SQLite run store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{decided_status, on, Approvals};
use crate::sqlite::SqliteStore;
use crate::{time, NewRun, Request, Result, RunStatus};

const RUNS: &str = "runs";

#[async_trait]
impl Approvals for SqliteStore {
    async fn await_approval(&self, run: &NewRun, expires_at: DateTime<Utc>) -> Result<bool> {
        let run = run.clone();
        let indexed = crate::indexed(&run.topic, &run.message);
        self.with_conn(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let waiting =
                tx.query_row(&on(super::WAITING, RUNS), params![run.message_id, run.rule], |_| Ok(())).optional()?;
            if waiting.is_some() {
                return Ok(false);
            }
            crate::sqlite::insert_run(&tx, &run, RunStatus::AwaitingApproval, &indexed)?;
            tx.execute(super::INSERT_GATE, params![run.id, run.message_id, run.rule, expires_at.timestamp_millis()])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn decide(&self, r: &Request, why: Option<&str>) -> Result<bool> {
        let (r, why) = (r.clone(), why.map(str::to_owned));
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            let status = decided_status(r.kind).as_str();
            let now = Utc::now().timestamp_millis();
            if tx.execute(&on(super::CLAIM, RUNS), params![status, now, why, r.run_id])? == 0 {
                return Ok(false);
            }
            tx.execute(
                crate::control::INSERT_REQUEST,
                params![r.id, r.kind.as_str(), r.run_id, r.message_id, r.rule, r.by, r.at.timestamp_millis()],
            )?;
            crate::control::sqlite::insert_event(&tx, &crate::control::request_event(&r))?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn expired(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<String>> {
        let (now, limit) = (now.timestamp_millis(), limit as i64);
        self.with_conn(move |c| {
            let mut stmt = c.prepare_cached(&on(super::EXPIRED, RUNS))?;
            let rows = stmt.query_map(params![now, limit], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn expires_at(&self, run_id: &str) -> Result<Option<DateTime<Utc>>> {
        let run_id = run_id.to_owned();
        self.with_conn(move |c| {
            let ms: Option<i64> = c.query_row(super::EXPIRES_AT, [run_id], |r| r.get(0)).optional()?;
            Ok(ms.map(time))
        })
        .await
    }
}
