//! The fleet in the SQLite run store: the statements of `super`.

use async_trait::async_trait;
use rusqlite::params;

use super::{count, Fleet, WorkerBeat, WorkerSeen};
use crate::sqlite::SqliteStore;
use crate::{time, Result};

fn seen(r: &rusqlite::Row) -> rusqlite::Result<WorkerSeen> {
    Ok(WorkerSeen {
        beat: WorkerBeat {
            id: r.get(0)?,
            host: r.get(1)?,
            pid: count(r.get(2)?),
            version: r.get(3)?,
            concurrency: count(r.get(4)?),
            prefetch: count(r.get(5)?),
            held: count(r.get(6)?),
            running: count(r.get(7)?),
            started_at: time(r.get(8)?),
        },
        seen_at: time(r.get(9)?),
        stopped_at: r.get::<_, Option<i64>>(10)?.map(time),
    })
}

#[async_trait]
impl Fleet for SqliteStore {
    async fn beat(&self, b: &WorkerBeat) -> Result<()> {
        let b = b.clone();
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            let (now, started) = (crate::state::now_ms(), b.started_at.timestamp_millis());
            tx.execute(
                super::BEAT,
                params![b.id, b.host, b.pid, b.version, b.concurrency, b.prefetch, b.held, b.running, started, now],
            )?;
            tx.execute(super::PRUNE, [super::kept_since()])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn leave(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.with_conn(move |c| {
            c.execute(super::LEAVE, params![id, crate::state::now_ms()])?;
            Ok(())
        })
        .await
    }

    async fn workers(&self) -> Result<Vec<WorkerSeen>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare(super::LIST)?;
            let rows = stmt.query_map([super::kept_since()], seen)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}
