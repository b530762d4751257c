//! Timers in the PostgreSQL run store: the statements of `super`. The
//! compare-and-set is an UPDATE, so a second worker waits on the row lock,
//! finds the last slot moved, and claims nothing.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{TimerAdvance, TimerSlot, TimerState, TimerStore};
use crate::postgres::{dialect, pg, PgStore};
use crate::{time, Result};

pub(crate) fn schema() -> String {
    super::SCHEMA.replace("INTEGER", "BIGINT")
}

fn slot(r: &Row) -> TimerSlot {
    TimerSlot {
        timer: r.get(0),
        slot: r.get(1),
        scheduled_at: time(r.get(2)),
        fired_at: time(r.get(3)),
        manual: r.get::<_, i64>(4) != 0,
    }
}

async fn claim(c: &impl tokio_postgres::GenericClient, s: &TimerSlot, claimant: &str, until: i64) -> Result<u64> {
    let (scheduled, fired, manual) =
        (s.scheduled_at.timestamp_millis(), s.fired_at.timestamp_millis(), i64::from(s.manual));
    c.execute(&dialect(super::CLAIM), &[&s.timer, &s.slot, &scheduled, &fired, &manual, &claimant, &until])
        .await
        .map_err(pg)
}

#[async_trait]
impl TimerStore for PgStore {
    async fn timer_last_slot(&self, timer: &str) -> Result<Option<DateTime<Utc>>> {
        let client = self.client().await?;
        let row = client.query_opt(&dialect(super::LAST), &[&timer]).await.map_err(pg)?;
        Ok(row.map(|r| time(r.get(0))))
    }

    async fn advance_timer(&self, a: &TimerAdvance) -> Result<Option<Vec<TimerSlot>>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let to = a.to.timestamp_millis();
        let moved = match a.from {
            None => tx.execute(&dialect(super::FIRST_SEEN), &[&a.timer, &to]).await,
            Some(from) => tx.execute(&dialect(super::ADVANCE), &[&a.timer, &from.timestamp_millis(), &to]).await,
        }
        .map_err(pg)?;
        if moved == 0 {
            return Ok(None);
        }
        let until = super::lease_end(a.lease);
        let mut claimed = Vec::new();
        for s in &a.fire {
            if claim(&tx, s, &a.claimant, until).await? == 1 {
                claimed.push(s.clone());
            }
        }
        tx.execute(&dialect(super::PRUNE), &[&a.timer, &super::kept_since()]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(Some(claimed))
    }

    async fn claim_fire(&self, s: &TimerSlot, claimant: &str, lease: Duration) -> Result<()> {
        let client = self.client().await?;
        claim(&*client, s, claimant, super::lease_end(lease)).await?;
        Ok(())
    }

    async fn claim_stale_slot(&self, claimant: &str, lease: Duration) -> Result<Option<TimerSlot>> {
        let (now, until) = (crate::state::now_ms(), super::lease_end(lease));
        let client = self.client().await?;
        let row = client.query_opt(&dialect(&super::reclaim_sql()), &[&now, &claimant, &until]).await.map_err(pg)?;
        Ok(row.as_ref().map(slot))
    }

    async fn slot_sent(&self, timer: &str, slot: &str) -> Result<()> {
        let client = self.client().await?;
        client.execute(&dialect(super::SENT), &[&timer, &slot, &crate::state::now_ms()]).await.map_err(pg)?;
        Ok(())
    }

    async fn timer_states(&self) -> Result<Vec<TimerState>> {
        let client = self.client().await?;
        let mut out = Vec::new();
        for row in client.query(super::STATES, &[]).await.map_err(pg)? {
            let name: String = row.get(0);
            let last_fire = client.query_opt(&dialect(super::LAST_FIRE), &[&name]).await.map_err(pg)?;
            let last_slot = row.get::<_, Option<i64>>(1).map(time);
            out.push(TimerState { last_slot, last_fire: last_fire.as_ref().map(slot), name });
        }
        Ok(out)
    }
}
