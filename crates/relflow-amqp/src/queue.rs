//! [`AmqpQueue`]: the state one queue keeps, and the [`WorkQueue`] methods,
//! each handing off to the module that owns its concern.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex as StdMutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use lapin::types::FieldTable;
use relflow_queue::{DeadLetter, Delivery, QueueDepth, QueueError, Result, WorkQueue};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::consume::{ConsumerSlot, InFlight};
use crate::dead_letters::DeadIds;
use crate::options::{delay_label, duration_ms, AmqpQueueOptions};
use crate::session::ConnState;

/// The RabbitMQ work queue. Cheap to share behind an `Arc`; every method
/// reconnects on its own when the connection was lost.
pub struct AmqpQueue {
    pub(crate) opts: AmqpQueueOptions,
    pub(crate) work: String,
    pub(crate) dead: String,
    pub(crate) conn: Mutex<ConnState>,
    pub(crate) consumer: Mutex<Option<ConsumerSlot>>,
    pub(crate) in_flight: StdMutex<HashMap<u64, InFlight>>,
    pub(crate) next_tag: AtomicU64,
    pub(crate) delays: StdMutex<BTreeSet<u64>>,
    pub(crate) dead_ids: DeadIds,
}

impl fmt::Debug for AmqpQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpQueue").field("opts", &self.opts).finish_non_exhaustive()
    }
}

pub(crate) fn backend(context: &str, err: impl fmt::Display) -> QueueError {
    QueueError::Backend(format!("rabbitmq: {context}: {err}"))
}

impl AmqpQueue {
    /// Connect and declare the topology (idempotent). Fails if RabbitMQ
    /// cannot be reached within `reconnect_timeout`, or if a queue exists
    /// with different arguments.
    pub async fn connect(opts: AmqpQueueOptions) -> Result<Self> {
        let queue = Self::new(opts);
        queue.session().await?;
        Ok(queue)
    }

    /// Build the queue without connecting: the first operation connects.
    pub fn new(opts: AmqpQueueOptions) -> Self {
        let delays = opts.retry_delays.iter().map(|d| duration_ms(*d)).filter(|ms| *ms > 0).collect();
        let backoff = opts.reconnect_backoff.0;
        AmqpQueue {
            work: format!("{}{}", opts.prefix, opts.work_queue),
            dead: format!("{}{}", opts.prefix, opts.dead_queue),
            opts,
            conn: Mutex::new(ConnState::new(backoff)),
            consumer: Mutex::new(None),
            in_flight: StdMutex::new(HashMap::new()),
            next_tag: AtomicU64::new(1),
            delays: StdMutex::new(delays),
            dead_ids: DeadIds::new(),
        }
    }

    /// The work queue's full name.
    pub fn work_queue_name(&self) -> &str {
        &self.work
    }

    /// The dead-letter queue's full name.
    pub fn dead_queue_name(&self) -> &str {
        &self.dead
    }

    /// The full name of the delay queue used for `delay`.
    pub fn retry_queue_name(&self, delay: Duration) -> String {
        format!("{}{}.{}", self.opts.prefix, self.opts.retry_queue_stem, delay_label(delay))
    }

    pub(crate) fn lock_delays(&self) -> MutexGuard<'_, BTreeSet<u64>> {
        self.delays.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_in_flight(&self) -> MutexGuard<'_, HashMap<u64, InFlight>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl WorkQueue for AmqpQueue {
    async fn enqueue(&self, payload: &[u8]) -> Result<()> {
        self.publish(&self.work, payload, FieldTable::default(), None).await
    }

    async fn claim(&self, wait: Duration) -> Result<Option<Delivery>> {
        let deadline = Instant::now() + wait;
        match tokio::time::timeout_at(deadline, self.claim_inner(deadline)).await {
            Ok(result) => result,
            Err(_) => Ok(None),
        }
    }

    /// A no-op: RabbitMQ keeps the delivery with this consumer for as long as
    /// the connection lives, and lapin's heartbeats keep it alive while the
    /// worker awaits a long run. Beware the broker's `consumer_timeout` (see
    /// the README): it is not reset by anything but an ack.
    async fn keep_alive(&self, delivery: &Delivery) -> Result<()> {
        self.check_held(delivery)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<()> {
        let held = self.take_in_flight(delivery)?;
        self.ack_held(&held).await
    }

    async fn retry(&self, delivery: &Delivery, delay: Duration, reason: &str) -> Result<()> {
        self.retry_held(delivery, delay, reason).await
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        self.dead_letter_held(delivery, reason).await
    }

    async fn release(&self, delivery: &Delivery) -> Result<()> {
        let held = self.take_in_flight(delivery)?;
        self.nack_held(&held).await
    }

    /// `ready` and `dead` are the broker's counts of ready messages (passive
    /// declares). `delayed` sums the delay queues this process knows about:
    /// the configured `retry_delays` plus the delays it has retried with.
    /// `in_flight` is per process: the deliveries this instance holds.
    async fn depth(&self) -> Result<QueueDepth> {
        let counts = self.count_queues().await?;
        Ok(QueueDepth { in_flight: self.lock_in_flight().len() as u64, ..counts })
    }

    /// Reads the whole dead queue with basic.get (no ack) on a throwaway
    /// channel, then closes the channel, which puts every message back.
    /// While the scan runs, the dead letters are invisible to other scans.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.list_dead(limit).await
    }

    async fn replay(&self, id: u64) -> Result<bool> {
        self.replay_dead(id).await
    }

    async fn purge_dead_letters(&self) -> Result<u64> {
        self.purge_dead().await
    }

    async fn prune_dead_letters(&self, before: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<u64> {
        self.prune_dead(before, limit).await
    }

    async fn prunable_dead_letters(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        let all = self.list_dead(usize::MAX).await?;
        Ok(all.iter().filter(|l| l.dead_at < before).count() as u64)
    }
}
