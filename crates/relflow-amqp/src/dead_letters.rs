//! The dead queue: dead-lettering (publish the copy, then ack), and listing,
//! replaying and purging, which read the queue with `basic.get` on a
//! throwaway channel and close it to put back what they did not take.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use lapin::options::{BasicAckOptions, BasicGetOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use lapin::Channel;
use relflow_queue::{DeadLetter, Delivery, Result};
use tokio::time::Instant;

use crate::headers::{
    attempt_of, dead_headers, header_string, header_u64, now_ms, replay_headers, HEADER_DEAD_AT, HEADER_DEAD_ID,
    HEADER_REASON,
};
use crate::queue::{backend, AmqpQueue};
use crate::session::ready_count;

/// What a scan of the dead queue found: the scan channel's delivery tag,
/// the dead letter, and its headers (for a replay).
type Found = (u64, DeadLetter, FieldTable);

impl AmqpQueue {
    /// `dead_letter`: the copy goes to the dead queue, then the original is acked.
    pub(crate) async fn dead_letter_held(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let held = self.take_in_flight(delivery)?;
        let headers = dead_headers(&held.headers, delivery.attempt, reason, self.dead_ids.next());
        if let Err(err) = self.publish(&self.dead, &delivery.payload, headers, None).await {
            self.lock_in_flight().insert(delivery.tag, held);
            return Err(err);
        }
        self.ack_held(&held).await
    }

    /// The oldest `limit` dead letters. The whole queue is read, so that
    /// "oldest first" holds even though quorum queues return requeued
    /// messages in their own order.
    pub(crate) async fn list_dead(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let (channel, found) = self.scan_dead(|_| false).await?;
        let _ = channel.close(200, "relflow: dead letters listed".into()).await;
        self.settle_dead(found.len()).await;
        let mut letters: Vec<DeadLetter> = found.into_iter().map(|(_, letter, _)| letter).collect();
        letters.sort_by_key(|l| (l.dead_at, l.id));
        letters.truncate(limit);
        Ok(letters)
    }

    pub(crate) async fn replay_dead(&self, id: u64) -> Result<bool> {
        let (channel, found) = self.scan_dead(|l| l.id == id).await?;
        let scanned = found.len();
        let result = match found.into_iter().find(|(_, l, _)| l.id == id) {
            None => Ok(false),
            Some(hit) => self.replay_one(&channel, hit, id).await.map(|()| true),
        };
        // Closing the scan channel requeues every other dead letter.
        let _ = channel.close(200, "relflow: replay".into()).await;
        self.settle_dead(scanned - usize::from(matches!(result, Ok(true)))).await;
        result
    }

    async fn replay_one(&self, channel: &Channel, (tag, letter, headers): Found, id: u64) -> Result<()> {
        self.publish(&self.work, &letter.payload, replay_headers(&headers, id), None).await?;
        // Confirmed on the work queue: now remove the dead letter.
        channel.basic_ack(tag, BasicAckOptions::default()).await.map_err(|e| backend("basic.ack (dead letter)", e))
    }

    /// Acks (deletes) up to `limit` dead letters that died before `before`;
    /// closing the scan channel requeues the rest.
    pub(crate) async fn prune_dead(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        let (channel, found) = self.scan_dead(|_| false).await?;
        let scanned = found.len();
        let mut pruned = 0;
        let mut result = Ok(());
        for (tag, _, _) in found.iter().filter(|(_, l, _)| l.dead_at < before).take(limit) {
            result =
                channel.basic_ack(*tag, BasicAckOptions::default()).await.map_err(|e| backend("basic.ack (prune)", e));
            if result.is_err() {
                break;
            }
            pruned += 1;
        }
        let _ = channel.close(200, "relflow: pruned".into()).await;
        self.settle_dead(scanned - pruned).await;
        result.map(|()| pruned as u64)
    }

    pub(crate) async fn purge_dead(&self) -> Result<u64> {
        let channel = self.admin_channel().await?;
        let n = channel
            .queue_purge(self.dead.as_str().into(), QueuePurgeOptions::default())
            .await
            .map_err(|e| backend("queue.purge", e))?;
        let _ = channel.close(200, "relflow: purge".into()).await;
        Ok(u64::from(n))
    }

    /// After a scan channel is closed, the quorum queue takes the returned
    /// messages back asynchronously. Wait (briefly, best effort) until they
    /// are visible again, so that a listing or replay followed at once by
    /// another one (or by `depth`) sees them all.
    async fn settle_dead(&self, returned: usize) {
        if returned == 0 {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let Ok(channel) = self.admin_channel().await else {
            return;
        };
        while Instant::now() < deadline {
            match ready_count(&channel, &self.dead).await {
                Ok(n) if n as usize >= returned => break,
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => return,
            }
        }
        let _ = channel.close(200, "relflow: settled".into()).await;
    }

    /// Scan the dead queue with basic.get (unacked) on a throwaway channel.
    /// `stop` ends the scan early. The channel is returned so the caller can
    /// ack some and close it, which requeues the rest.
    async fn scan_dead(&self, mut stop: impl FnMut(&DeadLetter) -> bool) -> Result<(Channel, Vec<Found>)> {
        let channel = self.admin_channel().await?;
        let mut found = Vec::new();
        loop {
            let got = channel
                .basic_get(self.dead.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(|e| backend("basic.get", e))?;
            let Some(msg) = got else { break };
            let delivery = msg.delivery;
            let headers = delivery.properties.headers().clone().unwrap_or_default();
            let letter = dead_letter_of(&headers, delivery.data);
            let done = stop(&letter);
            found.push((delivery.delivery_tag, letter, headers));
            if done || msg.message_count == 0 {
                break;
            }
        }
        Ok((channel, found))
    }
}

fn dead_letter_of(headers: &FieldTable, payload: Vec<u8>) -> DeadLetter {
    let dead_at = header_u64(headers, HEADER_DEAD_AT)
        .and_then(|ms| DateTime::<Utc>::from_timestamp_millis(ms as i64))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    DeadLetter {
        id: header_u64(headers, HEADER_DEAD_ID).unwrap_or(0),
        payload,
        reason: header_string(headers, HEADER_REASON).unwrap_or_default(),
        attempt: attempt_of(headers),
        dead_at,
    }
}

/// Dead-letter ids: `millis << 20 | salt << 8 | counter`, strictly increasing
/// within a process, roughly time-ordered across processes, and unique across
/// processes with overwhelming probability (a 12-bit per-process salt).
/// Always below 2^63, so they fit the signed 64-bit AMQP header.
pub(crate) struct DeadIds {
    last: AtomicU64,
    salt: u64,
}

impl DeadIds {
    pub(crate) fn new() -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let salt = (u64::from(std::process::id()) ^ u64::from(nanos) ^ (u64::from(nanos) >> 12)) & 0xfff;
        DeadIds { last: AtomicU64::new(0), salt }
    }

    pub(crate) fn next(&self) -> u64 {
        let candidate = (now_ms() << 20) | (self.salt << 8);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let id = candidate.max(last + 1);
            match self.last.compare_exchange_weak(last, id, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return id,
                Err(seen) => last = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_ids_increase_and_fit_i64() {
        let ids = DeadIds::new();
        let a = ids.next();
        let b = ids.next();
        assert!(b > a);
        assert!(b < i64::MAX as u64);
    }
}
