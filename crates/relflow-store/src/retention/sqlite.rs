//! Retention in the SQLite run store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{statements, Prune, Retention};
use crate::sqlite::SqliteStore;
use crate::Result;

#[async_trait]
impl Retention for SqliteStore {
    async fn prune(&self, what: Prune, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        let (before, limit) = (before.timestamp_millis(), limit as i64);
        self.with_conn(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let (delete, _) = statements(what, "runs", "run_logs");
            let ids: Vec<String> = {
                let mut stmt = tx.prepare_cached(&delete)?;
                let rows = stmt.query_map(params![before, limit], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            if what == Prune::Runs {
                for id in &ids {
                    tx.execute(super::DELETE_GATE, [id])?;
                }
                tx.execute(super::DELETE_HISTORY, params![before, limit])?;
                tx.execute(super::DELETE_REQUESTS, params![before, limit])?;
            }
            tx.commit()?;
            Ok(ids.len() as u64)
        })
        .await
    }

    async fn prunable(&self, what: Prune, before: DateTime<Utc>) -> Result<u64> {
        let before = before.timestamp_millis();
        self.with_conn(move |c| {
            let (_, count) = statements(what, "runs", "run_logs");
            Ok(c.query_row(&count, [before], |r| r.get::<_, i64>(0))?.max(0) as u64)
        })
        .await
    }
}
