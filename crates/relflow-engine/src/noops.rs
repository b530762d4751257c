//! The no-op counter, batched.
//!
//! Counting each message that matched no rule with its own store write (a
//! synced SQLite transaction, or a PostgreSQL round trip) capped no-op
//! throughput at the store's write rate (measured: ~640 msg/s on the
//! embedded queue, ~3.2k msg/s on RabbitMQ, where the bare loops do 3.3k and
//! 18k; docs/performance.md). The count is a statistic, not part of delivery:
//! the message is still acked only after it was matched. So the worker adds
//! in memory and writes the sum once a second and when it stops; a SIGKILL
//! loses at most the last second of the count, never a message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use relflow_store::RunStore;
use tokio_util::sync::CancellationToken;

/// How often pending no-ops are written to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub struct NoopCounter {
    pending: AtomicU64,
    store: Arc<dyn RunStore>,
}

impl NoopCounter {
    pub fn new(store: Arc<dyn RunStore>) -> Self {
        NoopCounter { pending: AtomicU64::new(0), store }
    }

    pub fn add(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes what is pending; on error keeps it for the next flush.
    pub async fn flush(&self) {
        let n = self.pending.swap(0, Ordering::Relaxed);
        if n == 0 {
            return;
        }
        if let Err(e) = self.store.count_noops(n).await {
            self.pending.fetch_add(n, Ordering::Relaxed);
            tracing::warn!("cannot count {n} no-op message(s), will retry: {e}");
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until `stop`, then once more.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(FLUSH_EVERY) => self.flush().await,
            }
        }
        self.flush().await;
    }
}
