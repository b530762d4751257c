//! The fleet in the PostgreSQL run store: the statements of `super`.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{count, Fleet, WorkerBeat, WorkerSeen};
use crate::postgres::{dialect, pg, PgStore};
use crate::{time, Result};

pub(crate) fn schema() -> String {
    super::SCHEMA.replace("INTEGER", "BIGINT")
}

fn seen(r: &Row) -> WorkerSeen {
    WorkerSeen {
        beat: WorkerBeat {
            id: r.get(0),
            host: r.get(1),
            pid: count(r.get(2)),
            version: r.get(3),
            concurrency: count(r.get(4)),
            prefetch: count(r.get(5)),
            held: count(r.get(6)),
            running: count(r.get(7)),
            started_at: time(r.get(8)),
        },
        seen_at: time(r.get(9)),
        stopped_at: r.get::<_, Option<i64>>(10).map(time),
    }
}

#[async_trait]
impl Fleet for PgStore {
    async fn beat(&self, b: &WorkerBeat) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let (now, started) = (crate::state::now_ms(), b.started_at.timestamp_millis());
        let n = |v: u32| i64::from(v);
        let (pid, conc, pre, held, running) = (n(b.pid), n(b.concurrency), n(b.prefetch), n(b.held), n(b.running));
        tx.execute(
            &dialect(super::BEAT),
            &[&b.id, &b.host, &pid, &b.version, &conc, &pre, &held, &running, &started, &now],
        )
        .await
        .map_err(pg)?;
        tx.execute(&dialect(super::PRUNE), &[&super::kept_since()]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn leave(&self, id: &str) -> Result<()> {
        let client = self.client().await?;
        client.execute(&dialect(super::LEAVE), &[&id, &crate::state::now_ms()]).await.map_err(pg)?;
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerSeen>> {
        let client = self.client().await?;
        let rows = client.query(&dialect(super::LIST), &[&super::kept_since()]).await.map_err(pg)?;
        Ok(rows.iter().map(seen).collect())
    }
}
