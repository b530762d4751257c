//! fedora-messaging over AMQP: each event to a topic exchange with the
//! headers and properties `fedora_messaging.message.get_message` reads, so a
//! stock `fedora-messaging consume` accepts it (schema `base.message`,
//! severity, `sent-at`, `priority`, message id = event id, JSON in UTF-8,
//! persistent).
//!
//! Publisher confirms: a batch is published, then its confirms are awaited
//! in order, and the events count as sent only up to the first one the
//! broker did not confirm. Not `mandatory`: an exchange with no queue bound
//! is a bus nobody listens to right now, as with fedora-messaging itself.
//! Any failure drops the connection; the next batch reconnects.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use relflow_store::PendingEvent;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::destination::{Destination, Published};
use crate::options::{AmqpOptions, AMQP};

/// How long a connect, or the confirms of one batch, may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Publishes to `[announce.amqp]`.
pub struct AmqpDestination {
    options: AmqpOptions,
    session: Mutex<Option<(Connection, Channel)>>,
}

impl AmqpDestination {
    /// Connects at the first publish.
    pub fn new(options: AmqpOptions) -> AmqpDestination {
        AmqpDestination { options, session: Mutex::new(None) }
    }

    /// The open channel (confirms on), connecting if there is none.
    async fn channel(&self) -> Result<Channel, String> {
        let mut session = self.session.lock().await;
        if let Some((conn, channel)) = session.as_ref() {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        *session = None;
        let props = ConnectionProperties::default().with_connection_name(self.options.connection_name.clone().into());
        let connect = relflow_amqp::connect(&self.options.url, self.options.tls.as_ref(), props);
        let conn = tokio::time::timeout(TIMEOUT, connect)
            .await
            .map_err(|_| format!("no answer from the broker within {TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let channel = conn.create_channel().await.map_err(|e| format!("cannot open a channel: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("cannot turn on publisher confirms: {e}"))?;
        *session = Some((conn, channel.clone()));
        Ok(channel)
    }

    /// Forgets the connection after a failure, closing it if it is still up.
    async fn reset(&self) {
        if let Some((conn, _)) = self.session.lock().await.take() {
            let _ = conn.close(200, "relflow: publish failed".into()).await;
        }
    }

    async fn publish_batch(&self, events: &[PendingEvent]) -> Published {
        let channel = match self.channel().await {
            Ok(c) => c,
            Err(e) => return Published { sent: 0, error: Some(e) },
        };
        let mut confirms = Vec::with_capacity(events.len());
        let mut error = None;
        for e in events {
            let body = e.body.to_string();
            let sent = channel
                .basic_publish(
                    self.options.exchange.as_str().into(),
                    e.topic.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    properties(e),
                )
                .await;
            match sent {
                Ok(confirm) => confirms.push(confirm),
                Err(err) => {
                    error = Some(format!("publish to {:?}: {err}", self.options.exchange));
                    break;
                }
            }
        }
        let mut confirmed = 0;
        for confirm in confirms {
            match tokio::time::timeout(TIMEOUT, confirm).await {
                Ok(Ok(Confirmation::Ack(_) | Confirmation::NotRequested)) => confirmed += 1,
                Ok(Ok(Confirmation::Nack(_))) => {
                    error = Some("the broker refused (nacked) the event".into());
                    break;
                }
                Ok(Err(err)) => {
                    error = Some(format!("publisher confirm: {err}"));
                    break;
                }
                Err(_) => {
                    error = Some(format!("no publisher confirm within {TIMEOUT:?}"));
                    break;
                }
            }
        }
        Published { sent: confirmed, error }
    }
}

#[async_trait]
impl Destination for AmqpDestination {
    fn name(&self) -> &'static str {
        AMQP
    }

    async fn publish(&self, events: &[PendingEvent]) -> Published {
        let published = self.publish_batch(events).await;
        if published.error.is_some() {
            self.reset().await;
        }
        published
    }
}

/// fedora-messaging's properties, with the event's headers plus `sent-at`.
fn properties(e: &PendingEvent) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (k, v) in &e.headers {
        headers.insert(k.as_str().into(), amqp_value(v));
    }
    let now = Utc::now();
    headers.insert("sent-at".into(), AMQPValue::LongString(now.to_rfc3339_opts(SecondsFormat::Secs, false).into()));
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_message_id(e.id.as_str().into())
        .with_timestamp(now.timestamp().max(0) as u64)
        .with_headers(headers)
}

/// A JSON header value as AMQP: numbers stay numbers, strings strings.
fn amqp_value(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => AMQPValue::LongLongInt(i),
            (None, Some(f)) => AMQPValue::Double(f),
            (None, None) => AMQPValue::LongString(n.to_string().into()),
        },
        Value::String(s) => AMQPValue::LongString(s.as_str().into()),
        Value::Array(items) => {
            AMQPValue::FieldArray(FieldArray::from(items.iter().map(amqp_value).collect::<Vec<_>>()))
        }
        Value::Object(map) => {
            let mut table = FieldTable::default();
            for (k, v) in map {
                table.insert(k.as_str().into(), amqp_value(v));
            }
            AMQPValue::FieldTable(table)
        }
    }
}
