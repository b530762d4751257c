//! Stateful-rule batches in the PostgreSQL run store: the statements of
//! `super`, a transaction-scoped advisory lock per (rule, key) so workers on
//! many hosts agree on the one open batch.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio_postgres::Row;

use super::{Added, Batch, BatchAdd, BatchItem, DueBatch, OpenBatch, StateStore};
use crate::postgres::{dialect, pg, PgStore};
use crate::{time, Result};

pub(crate) fn schema() -> String {
    super::SCHEMA.replace("INTEGER", "BIGINT")
}

fn key_lock(add: &BatchAdd) -> i64 {
    let key = crate::lock_key(&format!("relflow batch {}\0{}", add.rule, add.key));
    i64::from_be_bytes(key[..8].try_into().unwrap_or_default())
}

fn batch(r: &Row) -> Batch {
    Batch {
        id: r.get(0),
        rule: r.get(1),
        key: r.get(2),
        kind: super::kind(r.get(3)),
        state: r.get(4),
        outcome: r.get(5),
        opened_at: time(r.get(6)),
        due_at: time(r.get(7)),
        items: Vec::new(),
    }
}

#[async_trait]
impl StateStore for PgStore {
    async fn add_to_batch(&self, add: &BatchAdd) -> Result<Added> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key_lock(add)]).await.map_err(pg)?;
        let seen = tx.query_opt(&dialect(super::FIND_ITEM), &[&add.rule, &add.message_id]).await.map_err(pg)?;
        if let Some(row) = seen {
            return Ok(Added::Duplicate { batch: row.get(0) });
        }
        let now = super::now_ms();
        let open = tx.query_opt(&dialect(super::FIND_OPEN), &[&add.rule, &add.key]).await.map_err(pg)?;
        let (batch, mut due_at): (String, i64) = match open {
            Some(row) => (row.get(0), row.get(1)),
            None => {
                if add.kind == super::BatchKind::Join {
                    let closed =
                        tx.query_opt(&dialect(super::FIND_CLOSED_JOIN), &[&add.rule, &add.key]).await.map_err(pg)?;
                    if let Some(row) = closed {
                        return Ok(Added::Late { outcome: row.get::<_, Option<String>>(0).unwrap_or_default() });
                    }
                }
                let (id, due) = (super::batch_id(add), now.saturating_add(super::ms(add.window)));
                tx.execute(&dialect(super::OPEN), &[&id, &add.rule, &add.key, &add.kind.as_str(), &now, &due])
                    .await
                    .map_err(pg)?;
                (id, due)
            }
        };
        let seq: i64 = tx.query_one(&dialect(super::NEXT_SEQ), &[&batch]).await.map_err(pg)?.get(0);
        let mut replaced = false;
        if add.latest {
            let rows = tx.query(&dialect(super::WAITING), &[&batch]).await.map_err(pg)?;
            let waiting: Vec<Value> =
                rows.iter().map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap_or_default()).collect();
            replaced = !super::supersedes(&add.message, &waiting);
            if !replaced {
                tx.execute(&dialect(super::REPLACE_ALL), &[&batch]).await.map_err(pg)?;
            }
        }
        let message = add.message.to_string();
        let row: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
            [&add.rule, &add.message_id, &batch, &seq, &add.part, &message, &i64::from(replaced)];
        tx.execute(&dialect(super::INSERT_ITEM), &row).await.map_err(pg)?;
        let counts: Vec<(String, i64)> = tx
            .query(&dialect(super::PART_COUNTS), &[&batch])
            .await
            .map_err(pg)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let full = super::is_full(&add.limit, &counts);
        if full {
            due_at = now;
            tx.execute(&dialect(super::CLOSE_NOW), &[&now, &super::full_outcome(add.kind), &batch])
                .await
                .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        let count = counts.iter().map(|(_, n)| *n).sum::<i64>().max(0) as u64;
        Ok(Added::Buffered { batch, count, due_at: time(due_at), full })
    }

    async fn claim_due_batch(&self, claimant: &str, lease: Duration) -> Result<Option<DueBatch>> {
        let now = super::now_ms();
        let until = now.saturating_add(super::ms(lease));
        let client = self.client().await?;
        let row = client.query_opt(&dialect(&super::claim_sql()), &[&now, &claimant, &until]).await.map_err(pg)?;
        Ok(row.map(|r| DueBatch {
            id: r.get(0),
            rule: r.get(1),
            key: r.get(2),
            kind: super::kind(r.get(3)),
            outcome: r.get(4),
        }))
    }

    async fn batch_sent(&self, id: &str) -> Result<()> {
        let client = self.client().await?;
        client.execute(&dialect(super::SENT), &[&super::now_ms(), &id]).await.map_err(pg)?;
        Ok(())
    }

    async fn batch(&self, id: &str) -> Result<Option<Batch>> {
        let client = self.client().await?;
        let Some(row) = client.query_opt(&dialect(super::GET), &[&id]).await.map_err(pg)? else { return Ok(None) };
        let mut found = batch(&row);
        found.items = client
            .query(&dialect(super::ITEMS), &[&id])
            .await
            .map_err(pg)?
            .iter()
            .map(|r| BatchItem {
                part: r.get(0),
                message_id: r.get(1),
                message: serde_json::from_str(r.get(2)).unwrap_or_default(),
            })
            .collect();
        Ok(Some(found))
    }

    async fn open_batches(&self) -> Result<Vec<OpenBatch>> {
        let client = self.client().await?;
        let rows = client.query(super::OPEN_BATCHES, &[]).await.map_err(pg)?;
        let rows = rows
            .iter()
            .map(|r| {
                let batch = OpenBatch {
                    id: r.get(0),
                    rule: r.get(1),
                    key: r.get(2),
                    kind: super::kind(r.get(3)),
                    opened_at: time(r.get(4)),
                    due_at: time(r.get(5)),
                    arrived: Vec::new(),
                };
                (batch, r.get(6), r.get(7))
            })
            .collect();
        Ok(super::fold_open(rows))
    }
}
