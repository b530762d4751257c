//! Retention in the PostgreSQL run store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{statements, Prune, Retention};
use crate::postgres::dialect;
use crate::postgres::{pg, PgStore};
use crate::Result;

const RUNS: &str = "relflow_runs";
const LOGS: &str = "relflow_run_logs";

#[async_trait]
impl Retention for PgStore {
    async fn prune(&self, what: Prune, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        let (before, limit) = (before.timestamp_millis(), limit as i64);
        let (delete, _) = statements(what, RUNS, LOGS);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let ids = tx.query(&dialect(&delete), &[&before, &limit]).await.map_err(pg)?;
        if what == Prune::Runs {
            for row in &ids {
                tx.execute(&dialect(super::DELETE_GATE), &[&row.get::<_, String>(0)]).await.map_err(pg)?;
            }
            tx.execute(&dialect(super::DELETE_HISTORY), &[&before, &limit]).await.map_err(pg)?;
            tx.execute(&dialect(super::DELETE_REQUESTS), &[&before, &limit]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(ids.len() as u64)
    }

    async fn prunable(&self, what: Prune, before: DateTime<Utc>) -> Result<u64> {
        let (_, count) = statements(what, RUNS, LOGS);
        let client = self.client().await?;
        let row = client.query_one(&dialect(&count), &[&before.timestamp_millis()]).await.map_err(pg)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }
}
