//! Consuming the work queue and settling what was handed out: the consumer
//! channel is opened by the first `claim` and reopened whenever it died, and
//! every delivery is remembered with the channel it came on, because only
//! that channel can ack it.

use std::sync::atomic::Ordering;

use futures_lite::StreamExt;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};
use relflow_queue::{Delivery, QueueError, Result};
use tokio::time::Instant;

use crate::headers::{attempt_of, deliveries_of};
use crate::options::duration_ms;
use crate::queue::{backend, AmqpQueue};
use crate::session::{declare, quorum_args};

/// The consumer of the work queue, created lazily by `claim`.
pub(crate) struct ConsumerSlot {
    generation: u64,
    channel: Channel,
    consumer: Consumer,
}

/// What the queue remembers about a delivery it handed out.
pub(crate) struct InFlight {
    pub(crate) generation: u64,
    pub(crate) channel: Channel,
    pub(crate) delivery_tag: u64,
    pub(crate) headers: FieldTable,
}

/// A channel on its way to being the consumer: closed unless the setup
/// finishes. `claim`'s deadline may drop the setup half-way (a quorum queue
/// without a leader makes `basic.consume` wait); left open, such a channel
/// would get its consumer once the queue is back, and sit on `prefetch`
/// messages that nobody reads, for as long as the connection lives.
struct Unfinished(Option<Channel>);

impl Unfinished {
    fn channel(&self) -> &Channel {
        self.0.as_ref().expect("an unfinished channel is only taken by `finish`")
    }

    fn finish(mut self) -> Channel {
        self.0.take().expect("finish is called once")
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(channel) = self.0.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            // Closing cancels its consumer, if the broker made one, and
            // requeues whatever it was handed.
            let _ = channel.close(200, "relflow: consumer setup abandoned".into()).await;
        });
    }
}

impl AmqpQueue {
    async fn open_consumer(&self, deadline: Instant) -> Result<ConsumerSlot> {
        let session = self.session_until(deadline).await?;
        let unfinished = Unfinished(Some(session.conn.create_channel().await.map_err(|e| backend("open channel", e))?));
        let channel = unfinished.channel();
        channel
            .basic_qos(self.opts.prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(|e| backend("basic.qos", e))?;
        // Idempotent; recreates the work queue if it was deleted under us.
        declare(channel, &self.work, quorum_args()).await?;
        let mut args = FieldTable::default();
        if let Some(timeout) = self.opts.consumer_timeout {
            args.insert("x-consumer-timeout".into(), AMQPValue::LongLongInt(duration_ms(timeout) as i64));
        }
        let consumer = channel
            .basic_consume(self.work.as_str().into(), "".into(), BasicConsumeOptions::default(), args)
            .await
            .map_err(|e| backend("basic.consume", e))?;
        Ok(ConsumerSlot { generation: session.generation, channel: unfinished.finish(), consumer })
    }

    pub(crate) async fn claim_inner(&self, deadline: Instant) -> Result<Option<Delivery>> {
        let mut slot = self.consumer.lock().await;
        loop {
            let healthy = slot.as_ref().is_some_and(|s| s.channel.status().connected());
            if !healthy {
                if slot.is_some() {
                    tracing::warn!("rabbitmq: consumer channel lost, consuming again");
                    *slot = None;
                }
                *slot = Some(self.open_consumer(deadline).await?);
            }
            let current = slot.as_mut().expect("consumer slot was just filled");
            let next = match tokio::time::timeout_at(deadline, current.consumer.next()).await {
                Err(_) => return Ok(None),
                Ok(next) => next,
            };
            match next {
                Some(Ok(d)) if !current.channel.status().connected() => {
                    // Buffered before the channel died: the broker has
                    // already requeued it; it will come again on a new channel.
                    tracing::debug!(delivery_tag = d.delivery_tag, "rabbitmq: dropping a delivery of a closed channel");
                    *slot = None;
                }
                Some(Ok(d)) => return Ok(Some(self.hold(current, d))),
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "rabbitmq: consumer failed");
                    *slot = None;
                }
                None => {
                    tracing::warn!("rabbitmq: consumer cancelled by the broker");
                    *slot = None;
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// Remember `d` under a tag of our own and hand it out.
    fn hold(&self, slot: &ConsumerSlot, d: AmqpDelivery) -> Delivery {
        let headers = d.properties.headers().clone().unwrap_or_default();
        let (attempt, deliveries) = (attempt_of(&headers), deliveries_of(&headers));
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        let held = InFlight {
            generation: slot.generation,
            channel: slot.channel.clone(),
            delivery_tag: d.delivery_tag,
            headers,
        };
        self.lock_in_flight().insert(tag, held);
        Delivery { tag, payload: d.data, attempt, deliveries }
    }

    /// Forget `delivery` and return what is needed to settle it.
    pub(crate) fn take_in_flight(&self, delivery: &Delivery) -> Result<InFlight> {
        self.lock_in_flight().remove(&delivery.tag).ok_or_else(|| {
            QueueError::Backend(format!(
                "rabbitmq: delivery {} is not held by this queue (already settled?)",
                delivery.tag
            ))
        })
    }

    /// `keep_alive`: only says whether the delivery could still be settled.
    pub(crate) fn check_held(&self, delivery: &Delivery) -> Result<()> {
        let held = self.lock_in_flight().get(&delivery.tag).map(|h| h.channel.status().connected());
        match held {
            Some(true) => Ok(()),
            Some(false) => Err(QueueError::Backend(
                "rabbitmq: the channel of this delivery was closed; the broker will deliver it again".to_owned(),
            )),
            None => Err(QueueError::Backend(format!("rabbitmq: delivery {} is not held by this queue", delivery.tag))),
        }
    }

    fn check_channel(&self, held: &InFlight) -> Result<()> {
        if held.channel.status().connected() {
            Ok(())
        } else {
            Err(QueueError::Backend(format!(
                "rabbitmq: the channel of this delivery (connection #{}) was closed, so the broker \
                 has requeued the message and will deliver it again (closed by consumer_timeout?)",
                held.generation
            )))
        }
    }

    pub(crate) async fn ack_held(&self, held: &InFlight) -> Result<()> {
        self.check_channel(held)?;
        held.channel.basic_ack(held.delivery_tag, BasicAckOptions::default()).await.map_err(|e| backend("basic.ack", e))
    }

    /// `release`: back to the queue, attempt unchanged.
    pub(crate) async fn nack_held(&self, held: &InFlight) -> Result<()> {
        self.check_channel(held)?;
        held.channel
            .basic_nack(held.delivery_tag, BasicNackOptions { multiple: false, requeue: true })
            .await
            .map_err(|e| backend("basic.nack", e))
    }
}
