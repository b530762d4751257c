//! Timers in the SQLite run store. An IMMEDIATE transaction takes SQLite's
//! write lock up front, so two workers on one host advance a timer in turn.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{TimerAdvance, TimerSlot, TimerState, TimerStore};
use crate::sqlite::SqliteStore;
use crate::{time, Result};

fn slot(r: &rusqlite::Row) -> rusqlite::Result<TimerSlot> {
    Ok(TimerSlot {
        timer: r.get(0)?,
        slot: r.get(1)?,
        scheduled_at: time(r.get(2)?),
        fired_at: time(r.get(3)?),
        manual: r.get::<_, i64>(4)? != 0,
    })
}

fn claim(c: &rusqlite::Connection, s: &TimerSlot, claimant: &str, until: i64) -> rusqlite::Result<usize> {
    let (scheduled, fired) = (s.scheduled_at.timestamp_millis(), s.fired_at.timestamp_millis());
    c.execute(super::CLAIM, params![s.timer, s.slot, scheduled, fired, i64::from(s.manual), claimant, until])
}

fn advance(c: &mut rusqlite::Connection, a: &TimerAdvance) -> rusqlite::Result<Option<Vec<TimerSlot>>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let to = a.to.timestamp_millis();
    let moved = match a.from {
        None => tx.execute(super::FIRST_SEEN, params![a.timer, to])?,
        Some(from) => tx.execute(super::ADVANCE, params![a.timer, from.timestamp_millis(), to])?,
    };
    if moved == 0 {
        return Ok(None);
    }
    let until = super::lease_end(a.lease);
    let mut claimed = Vec::new();
    for s in &a.fire {
        if claim(&tx, s, &a.claimant, until)? == 1 {
            claimed.push(s.clone());
        }
    }
    tx.execute(super::PRUNE, params![a.timer, super::kept_since()])?;
    tx.commit()?;
    Ok(Some(claimed))
}

fn states(c: &mut rusqlite::Connection) -> rusqlite::Result<Vec<TimerState>> {
    let timers: Vec<(String, Option<i64>)> =
        c.prepare(super::STATES)?.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (name, last) in timers {
        let last_fire = c.query_row(super::LAST_FIRE, [&name], slot).optional()?;
        out.push(TimerState { name, last_slot: last.map(time), last_fire });
    }
    Ok(out)
}

#[async_trait]
impl TimerStore for SqliteStore {
    async fn timer_last_slot(&self, timer: &str) -> Result<Option<DateTime<Utc>>> {
        let timer = timer.to_owned();
        self.with_conn(move |c| Ok(c.query_row(super::LAST, [timer], |r| r.get(0)).optional()?.map(time))).await
    }

    async fn advance_timer(&self, a: &TimerAdvance) -> Result<Option<Vec<TimerSlot>>> {
        let a = a.clone();
        self.with_conn(move |c| Ok(advance(c, &a)?)).await
    }

    async fn claim_fire(&self, s: &TimerSlot, claimant: &str, lease: Duration) -> Result<()> {
        let (s, claimant) = (s.clone(), claimant.to_owned());
        self.with_conn(move |c| {
            claim(c, &s, &claimant, super::lease_end(lease))?;
            Ok(())
        })
        .await
    }

    async fn claim_stale_slot(&self, claimant: &str, lease: Duration) -> Result<Option<TimerSlot>> {
        let claimant = claimant.to_owned();
        self.with_conn(move |c| {
            let now = crate::state::now_ms();
            let until = super::lease_end(lease);
            Ok(c.query_row(&super::reclaim_sql(), params![now, claimant, until], slot).optional()?)
        })
        .await
    }

    async fn slot_sent(&self, timer: &str, slot: &str) -> Result<()> {
        let (timer, slot) = (timer.to_owned(), slot.to_owned());
        self.with_conn(move |c| {
            c.execute(super::SENT, params![timer, slot, crate::state::now_ms()])?;
            Ok(())
        })
        .await
    }

    async fn timer_states(&self) -> Result<Vec<TimerState>> {
        self.with_conn(|c| Ok(states(c)?)).await
    }
}
