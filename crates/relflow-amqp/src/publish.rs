//! Publishing with publisher confirms, and `retry`: publish the copy, wait
//! for its confirm, then ack the original.

use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};
use relflow_queue::{Delivery, QueueError, Result};

use crate::headers::{now_ms, retry_headers};
use crate::options::duration_ms;
use crate::queue::{backend, AmqpQueue};
use crate::session::Session;

/// `basic.return` reply code of a mandatory message no queue took.
const NO_ROUTE: u16 = 312;

impl AmqpQueue {
    /// Publish with confirm; retried on a fresh channel/connection on nack,
    /// return, timeout or connection loss. With `retry_ms`, the delay queue is
    /// (re)declared before every attempt.
    pub(crate) async fn publish(
        &self,
        queue: &str,
        payload: &[u8],
        headers: FieldTable,
        retry_ms: Option<u64>,
    ) -> Result<()> {
        let attempts = self.opts.publish_attempts.max(1);
        let mut last_err = None;
        for attempt in 1..=attempts {
            // session() already retries the connection (with backoff) for
            // `reconnect_timeout`: if that failed, give up now.
            let session = self.session().await?;
            match self.publish_once(&session, queue, payload, headers.clone(), retry_ms).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    tracing::warn!(queue, attempt, error = %err, "rabbitmq: publish not confirmed");
                    // Whatever happened, do not reuse this channel: a timed-out
                    // confirm may still arrive on it and confuse the next one.
                    if session.publish.status().connected() {
                        let _ = session.publish.close(200, "relflow: publish failed".into()).await;
                    }
                    last_err = Some(err);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| QueueError::Backend("rabbitmq: publish failed".to_owned())))
    }

    async fn publish_once(
        &self,
        session: &Session,
        queue: &str,
        payload: &[u8],
        headers: FieldTable,
        retry_ms: Option<u64>,
    ) -> Result<()> {
        if let Some(ms) = retry_ms {
            // Redeclared before every use: cheap, and it recreates the queue if
            // somebody deleted it.
            self.declare_retry_queue(&session.publish, ms).await?;
        }
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/octet-stream".into())
            .with_timestamp(now_ms() / 1000)
            .with_headers(headers);
        let mandatory = BasicPublishOptions { mandatory: true, immediate: false };
        let confirm = session
            .publish
            .basic_publish("".into(), queue.into(), mandatory, payload, props)
            .await
            .map_err(|e| backend("publish", e))?;
        let confirmation = tokio::time::timeout(self.opts.confirm_timeout, confirm)
            .await
            .map_err(|_| {
                QueueError::Backend(format!("rabbitmq: no publisher confirm within {:?}", self.opts.confirm_timeout))
            })?
            .map_err(|e| backend("publisher confirm", e))?;
        self.confirmed(session, queue, confirmation).await
    }

    /// `Ok` only for a plain ack: a returned message was acked by the broker
    /// but reached no queue.
    async fn confirmed(&self, session: &Session, queue: &str, confirmation: Confirmation) -> Result<()> {
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                if returned.reply_code == NO_ROUTE {
                    // The queue is gone. Redeclare the topology so the next
                    // attempt can succeed.
                    let _ = self.declare_topology(&session.publish).await;
                }
                Err(QueueError::Backend(format!(
                    "rabbitmq: message to {} returned: {} {}",
                    queue, returned.reply_code, returned.reply_text
                )))
            }
            Confirmation::Nack(None) => {
                Err(QueueError::Backend(format!("rabbitmq: broker nacked the message to {}", queue)))
            }
            Confirmation::NotRequested => {
                Err(QueueError::Backend("rabbitmq: publisher confirms are not enabled".to_owned()))
            }
        }
    }

    /// `retry`: the copy goes to the delay queue of `delay` (or straight back
    /// to the work queue for a zero delay) with one attempt more.
    pub(crate) async fn retry_held(&self, delivery: &Delivery, delay: Duration, reason: &str) -> Result<()> {
        let held = self.take_in_flight(delivery)?;
        let headers = retry_headers(&held.headers, delivery.attempt, reason);
        let ms = duration_ms(delay);
        let result = if ms == 0 {
            self.publish(&self.work, &delivery.payload, headers, None).await
        } else {
            self.lock_delays().insert(ms);
            let queue = self.retry_queue_name(delay);
            self.publish(&queue, &delivery.payload, headers, Some(ms)).await
        };
        if let Err(err) = result {
            // Not re-published: keep the original, so the worker can still
            // release it (or let it be redelivered).
            self.lock_in_flight().insert(delivery.tag, held);
            return Err(err);
        }
        // The copy is confirmed; only now let the original go. A crash here
        // means a duplicate, never a loss.
        self.ack_held(&held).await
    }
}
