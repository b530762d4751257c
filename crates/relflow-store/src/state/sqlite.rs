//! Stateful-rule batches in the SQLite run store. An IMMEDIATE transaction
//! takes SQLite's write lock up front, which is the per-key lock on one host.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use super::{Added, Batch, BatchAdd, BatchItem, DueBatch, OpenBatch, StateStore};
use crate::sqlite::SqliteStore;
use crate::{time, Result};

fn add(c: &mut rusqlite::Connection, add: &BatchAdd) -> rusqlite::Result<Added> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let seen: Option<String> =
        tx.query_row(super::FIND_ITEM, params![add.rule, add.message_id], |r| r.get(0)).optional()?;
    if let Some(batch) = seen {
        return Ok(Added::Duplicate { batch });
    }
    let now = super::now_ms();
    let open: Option<(String, i64)> =
        tx.query_row(super::FIND_OPEN, params![add.rule, add.key], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
    let (batch, mut due_at) = match open {
        Some(open) => open,
        None => {
            if add.kind == super::BatchKind::Join {
                let closed: Option<Option<String>> =
                    tx.query_row(super::FIND_CLOSED_JOIN, params![add.rule, add.key], |r| r.get(0)).optional()?;
                if let Some(outcome) = closed {
                    return Ok(Added::Late { outcome: outcome.unwrap_or_default() });
                }
            }
            let (id, due) = (super::batch_id(add), now.saturating_add(super::ms(add.window)));
            tx.execute(super::OPEN, params![id, add.rule, add.key, add.kind.as_str(), now, due])?;
            (id, due)
        }
    };
    let seq: i64 = tx.query_row(super::NEXT_SEQ, [&batch], |r| r.get(0))?;
    let mut replaced = false;
    if add.latest {
        let waiting: Vec<Value> = tx
            .prepare(super::WAITING)?
            .query_map([&batch], |r| r.get::<_, String>(0))?
            .map(|m| m.map(|m| serde_json::from_str(&m).unwrap_or_default()))
            .collect::<rusqlite::Result<_>>()?;
        replaced = !super::supersedes(&add.message, &waiting);
        if !replaced {
            tx.execute(super::REPLACE_ALL, [&batch])?;
        }
    }
    let message = add.message.to_string();
    let row = params![add.rule, add.message_id, batch, seq, add.part, message, i64::from(replaced)];
    tx.execute(super::INSERT_ITEM, row)?;
    let counts: Vec<(String, i64)> = tx
        .prepare(super::PART_COUNTS)?
        .query_map([&batch], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let full = super::is_full(&add.limit, &counts);
    if full {
        due_at = now;
        tx.execute(super::CLOSE_NOW, params![now, super::full_outcome(add.kind), batch])?;
    }
    tx.commit()?;
    let count = counts.iter().map(|(_, n)| *n).sum::<i64>().max(0) as u64;
    Ok(Added::Buffered { batch, count, due_at: time(due_at), full })
}

fn get(c: &mut rusqlite::Connection, id: &str) -> rusqlite::Result<Option<Batch>> {
    let batch = c
        .query_row(super::GET, [id], |r| {
            Ok(Batch {
                id: r.get(0)?,
                rule: r.get(1)?,
                key: r.get(2)?,
                kind: super::kind(&r.get::<_, String>(3)?),
                state: r.get(4)?,
                outcome: r.get(5)?,
                opened_at: time(r.get(6)?),
                due_at: time(r.get(7)?),
                items: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut batch) = batch else { return Ok(None) };
    batch.items = c
        .prepare(super::ITEMS)?
        .query_map([id], |r| {
            let message: String = r.get(2)?;
            Ok(BatchItem {
                part: r.get(0)?,
                message_id: r.get(1)?,
                message: serde_json::from_str(&message).unwrap_or_default(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(batch))
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn add_to_batch(&self, request: &BatchAdd) -> Result<Added> {
        let request = request.clone();
        self.with_conn(move |c| Ok(add(c, &request)?)).await
    }

    async fn claim_due_batch(&self, claimant: &str, lease: Duration) -> Result<Option<DueBatch>> {
        let claimant = claimant.to_owned();
        self.with_conn(move |c| {
            let now = super::now_ms();
            let until = now.saturating_add(super::ms(lease));
            let due = c
                .query_row(&super::claim_sql(), params![now, claimant, until], |r| {
                    Ok(DueBatch {
                        id: r.get(0)?,
                        rule: r.get(1)?,
                        key: r.get(2)?,
                        kind: super::kind(&r.get::<_, String>(3)?),
                        outcome: r.get(4)?,
                    })
                })
                .optional()?;
            Ok(due)
        })
        .await
    }

    async fn batch_sent(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.with_conn(move |c| {
            c.execute(super::SENT, params![super::now_ms(), id])?;
            Ok(())
        })
        .await
    }

    async fn batch(&self, id: &str) -> Result<Option<Batch>> {
        let id = id.to_owned();
        self.with_conn(move |c| Ok(get(c, &id)?)).await
    }

    async fn open_batches(&self) -> Result<Vec<OpenBatch>> {
        self.with_conn(|c| {
            let rows = c
                .prepare(super::OPEN_BATCHES)?
                .query_map([], |r| {
                    let batch = OpenBatch {
                        id: r.get(0)?,
                        rule: r.get(1)?,
                        key: r.get(2)?,
                        kind: super::kind(&r.get::<_, String>(3)?),
                        opened_at: time(r.get(4)?),
                        due_at: time(r.get(5)?),
                        arrived: Vec::new(),
                    };
                    Ok((batch, r.get(6)?, r.get(7)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(super::fold_open(rows))
        })
        .await
    }
}
