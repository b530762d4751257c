//! fedora-messaging over AMQP: a durable queue bound to a topic exchange.
//!
//! relflow declares a durable queue (default `relflow-bridge.<name>`), binds
//! it to the exchange (default `amq.topic`) with the configured keys, and
//! consumes it with manual acks. The queue is what makes a bridge restart
//! lossless: while the bridge is down the broker keeps collecting messages.
//!
//! **Ack ordering.** A delivery is acked upstream only after the sink said
//! what became of it: queued (the work queue confirmed it is durable), a
//! duplicate (an earlier copy was), or rejected (it can never be accepted;
//! it is `basic.reject`ed without requeue so a broker dead-letter exchange,
//! if any, gets it). If the work queue fails, the delivery is nacked back and
//! the bridge reconnects after a backoff. A bridge killed at any point leaves
//! unacked deliveries with the broker, which redelivers them; the dedupe
//! window drops the copies that had already been queued.
//!
//! **Mapping.** routing key -> `topic`; `message_id` -> `id`; AMQP headers
//! (`fedora_messaging_schema`, `sent-at`, `fedora_messaging_severity`, ...)
//! -> `headers` as JSON; `sent-at` -> `sent_at`; the JSON body -> `body`.
//! This is `Message::from_fedora_messaging`, the same decoder `relflow
//! publish` uses for fedora-messaging JSON files.
//!
//! **TLS.** `amqps://` URLs use rustls, through [`relflow_amqp::connect`], the
//! same connect as the RabbitMQ work queue: `tls.ca_cert` is trusted on top
//! of the system roots; `tls.cert` + `tls.key` present a client certificate
//! and log in with SASL EXTERNAL (the broker maps the certificate's subject
//! to a user), as Fedora's public broker requires.

use std::time::Duration;

use anyhow::{bail, Context};
use async_trait::async_trait;
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::ConnectionProperties;
use relflow_amqp::{connect, TlsOptions};
use relflow_core::config::ingest::AmqpSource as AmqpSourceConfig;
use relflow_core::redact::redact_url;
use relflow_core::Message;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::sink::{Outcome, Sink};
use crate::Source;

/// A fedora-messaging `[[source]]`.
pub struct AmqpSource {
    config: AmqpSourceConfig,
}

impl AmqpSource {
    pub fn new(config: AmqpSourceConfig) -> AmqpSource {
        AmqpSource { config }
    }

    fn label(&self) -> String {
        format!("amqp:{}", self.config.name)
    }
}

#[async_trait]
impl Source for AmqpSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn run(self: Box<Self>, sink: Sink, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut delay = Duration::from_millis(500);
        loop {
            match self.session(&sink, &shutdown, &mut delay).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(source = %self.label(), "{e:#}; reconnecting in {delay:?}");
                    sink.link(&self.label(), &redact_url(&self.config.url), Err(format!("{e:#}")));
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

impl AmqpSource {
    /// One connection's life: returns `Ok` on shutdown, `Err` when the
    /// connection or the work queue failed (the caller backs off and retries).
    async fn session(&self, sink: &Sink, shutdown: &CancellationToken, delay: &mut Duration) -> anyhow::Result<()> {
        let c = &self.config;
        let label = self.label();
        let tls = c.tls.as_ref().map(TlsOptions::from);
        let conn = tokio::select! {
            r = connect(&c.url, tls.as_ref(), ConnectionProperties::default()) => r?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let channel = conn.create_channel().await.context("cannot open a channel")?;
        channel.basic_qos(c.prefetch, BasicQosOptions::default()).await?;
        let queue = c.queue_name();
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("cannot declare the durable queue {queue:?}"))?;
        for key in &c.bindings {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    c.exchange.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .with_context(|| {
                    format!(
                        "cannot bind {queue:?} to exchange {:?} with {key:?} (does the exchange exist?)",
                        c.exchange
                    )
                })?;
        }
        let tag = format!("relflow-bridge.{}.{}", c.name, std::process::id());
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("cannot consume {queue:?}"))?;
        tracing::info!(source = %label, queue = %queue, exchange = %c.exchange, bindings = ?c.bindings, "consuming");
        sink.link(&label, &redact_url(&c.url), Ok(()));
        *delay = Duration::from_millis(500);
        loop {
            // Only waiting for the next delivery races shutdown: a delivery
            // being handled is finished (enqueued and acked) first.
            let next = tokio::select! {
                d = consumer.next() => d,
                _ = shutdown.cancelled() => {
                    let _ = conn.close(200, "relflow bridge shutting down".into()).await;
                    return Ok(());
                }
            };
            let delivery = match next {
                None => bail!("the broker cancelled the consumer"),
                Some(Err(e)) => return Err(e).context("connection lost"),
                Some(Ok(d)) => d,
            };
            let outcome = match to_message(&label, &delivery, sink.max_bytes()) {
                Ok(msg) => sink.submit(msg).await,
                Err((check, reason)) => {
                    Ok(sink.reject(&label, None, Some(delivery.routing_key.as_str()), check, reason))
                }
            };
            match outcome {
                Ok(Outcome::Queued | Outcome::Duplicate) => {
                    delivery.ack(BasicAckOptions::default()).await.context("cannot ack upstream")?;
                }
                Ok(Outcome::Rejected { .. }) => {
                    delivery.reject(BasicRejectOptions { requeue: false }).await.context("cannot reject upstream")?;
                }
                Err(e) => {
                    let _ = delivery.nack(BasicNackOptions { requeue: true, multiple: false }).await;
                    return Err(e.into());
                }
            }
        }
    }
}

/// Maps a delivery onto the message model, or says why it cannot be
/// (check, reason).
pub fn to_message(source: &str, d: &Delivery, max_bytes: usize) -> Result<Message, (&'static str, String)> {
    if d.data.len() > max_bytes {
        return Err(("too_large", format!("body is {} bytes, over max_message_bytes ({max_bytes})", d.data.len())));
    }
    let body: Value = serde_json::from_slice(&d.data).map_err(|e| ("decode", format!("body is not JSON: {e}")))?;
    if !body.is_object() {
        return Err(("decode", format!("body must be a JSON object, found {}", relflow_core::json_type(&body))));
    }
    let mut m = Map::new();
    m.insert("topic".into(), d.routing_key.as_str().into());
    if let Some(id) = d.properties.message_id() {
        m.insert("id".into(), id.as_str().into());
    }
    if let Some(h) = d.properties.headers() {
        m.insert("headers".into(), table_to_json(h));
    }
    m.insert("body".into(), body);
    Message::from_fedora_messaging(m, source).map_err(|e| ("decode", e.to_string()))
}

/// AMQP header values as plain JSON: byte strings as strings where they are
/// UTF-8, otherwise `{"hex": "..."}`, so no byte is turned into U+FFFD.
pub fn table_to_json(t: &FieldTable) -> Value {
    Value::Object(t.inner().iter().map(|(k, v)| (k.as_str().to_owned(), value_to_json(v))).collect())
}

fn value_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => (*b).into(),
        AMQPValue::ShortShortInt(i) => (*i).into(),
        AMQPValue::ShortShortUInt(i) => (*i).into(),
        AMQPValue::ShortInt(i) => (*i).into(),
        AMQPValue::ShortUInt(i) => (*i).into(),
        AMQPValue::LongInt(i) => (*i).into(),
        AMQPValue::LongUInt(i) => (*i).into(),
        AMQPValue::LongLongInt(i) => (*i).into(),
        AMQPValue::Float(f) => (*f).into(),
        AMQPValue::Double(f) => (*f).into(),
        AMQPValue::DecimalValue(d) => (d.value as f64 / 10f64.powi(d.scale.into())).into(),
        AMQPValue::ShortString(s) => s.as_str().into(),
        AMQPValue::LongString(s) => bytes_to_json(s.as_bytes()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_to_json).collect()),
        AMQPValue::Timestamp(t) => (*t).into(),
        AMQPValue::FieldTable(t) => table_to_json(t),
        AMQPValue::ByteArray(b) => bytes_to_json(b.as_slice()),
        AMQPValue::Void => Value::Null,
    }
}

fn bytes_to_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.into(),
        Err(_) => serde_json::json!({"hex": hex::encode(bytes)}),
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::{AMQPValue, ByteArray, FieldTable, LongString};

    #[test]
    fn byte_headers_keep_every_byte() {
        let mut t = FieldTable::default();
        t.insert("bin".into(), AMQPValue::ByteArray(ByteArray::from(vec![0xff, 0x00, 0x41])));
        t.insert("long".into(), AMQPValue::LongString(LongString::from(vec![0xc3, 0x28])));
        t.insert("text".into(), AMQPValue::LongString(LongString::from("é")));
        let v = super::table_to_json(&t);
        assert_eq!(v, serde_json::json!({"bin": {"hex": "ff0041"}, "long": {"hex": "c328"}, "text": "é"}));
    }
}
