//! Chaining onto the work queue: an event a rule matches enters the queue
//! through the one intake (`relflow_ingest::Sink`), like every other
//! message, whatever the queue is (embedded SQLite or RabbitMQ). The sink
//! dedupes by id, so an event handed over twice (a drainer that died before
//! marking it sent) is queued once.

use async_trait::async_trait;
use relflow_ingest::{Outcome, Sink};
use relflow_store::PendingEvent;

use crate::destination::{Destination, Published};
use crate::options::QUEUE;

/// Puts events on the work queue.
pub struct QueueDestination {
    sink: Sink,
}

impl QueueDestination {
    /// Events go through `sink` (its dedupe, its queue).
    pub fn new(sink: Sink) -> QueueDestination {
        QueueDestination { sink }
    }
}

#[async_trait]
impl Destination for QueueDestination {
    fn name(&self) -> &'static str {
        QUEUE
    }

    async fn publish(&self, events: &[PendingEvent]) -> Published {
        for (i, e) in events.iter().enumerate() {
            match self.sink.submit(crate::chain::message(e)).await {
                Ok(Outcome::Queued | Outcome::Duplicate) => {}
                // Can never be queued (too large for max_message_bytes): the
                // sink logged why; holding it back would stop every later one.
                Ok(Outcome::Rejected { .. }) => {}
                Err(err) => return Published { sent: i, error: Some(err.to_string()) },
            }
        }
        Published::all(events.len())
    }
}
