//! Where events go: one [`Destination`] per bus, and the work queue.

use async_trait::async_trait;
use relflow_store::PendingEvent;

/// How far a batch got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The first `sent` events of the batch are safely at the destination
    /// (confirmed by the broker, on the socket, on the work queue).
    pub sent: usize,
    /// Why the next one is not; `None` when the whole batch went.
    pub error: Option<String>,
}

impl Published {
    /// The whole batch of `n` went.
    pub fn all(n: usize) -> Published {
        Published { sent: n, error: None }
    }
}

/// One place events are published to.
#[async_trait]
pub trait Destination: Send + Sync {
    /// The outbox's name for it (`amqp`, `fedmsg`, `queue`).
    fn name(&self) -> &'static str;

    /// Whether this process can publish there now. `false` leaves the
    /// events to another process (e.g. the one that holds the fedmsg
    /// socket) instead of counting failures.
    async fn ready(&self) -> bool {
        true
    }

    /// Publishes `events` in order, stopping at the first that fails.
    async fn publish(&self, events: &[PendingEvent]) -> Published;
}
