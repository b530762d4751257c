//! What an [`AmqpQueue`](crate::AmqpQueue) is told: where the broker is, what
//! the queues are called, and how hard to try.

use std::fmt;
use std::time::Duration;

use relflow_core::redact::redact_url;

use crate::connect::TlsOptions;

/// How to reach RabbitMQ and what to call things there.
#[derive(Clone)]
pub struct AmqpQueueOptions {
    /// AMQP URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`. Query
    /// parameters such as `?heartbeat=30` are honoured by lapin.
    pub url: String,
    /// More addresses of the same RabbitMQ cluster. Every connect (the
    /// first and each reconnect) starts at the address that worked last and
    /// tries the others in turn, `url` first.
    pub failover_urls: Vec<String>,
    /// How long one address may take to connect and declare the topology
    /// before the next one is tried (a node that is down refuses at once; a
    /// node cut off from its peers may not answer at all).
    pub connect_timeout: Duration,
    /// Prepended to every queue name, so several relflow installations (or
    /// tests) can share one vhost.
    pub prefix: String,
    /// Name of the work queue (after `prefix`). Default `relflow.work`.
    pub work_queue: String,
    /// Name of the dead-letter queue (after `prefix`). Default `relflow.dead`.
    pub dead_queue: String,
    /// Stem of the delay queues (after `prefix`): `<stem>.<delay>`.
    /// Default `relflow.retry`.
    pub retry_queue_stem: String,
    /// `basic.qos` prefetch: how many unacked deliveries this instance may
    /// hold. Set it to the worker's concurrency.
    pub prefetch: u16,
    /// Retry delays to declare up front and to count in [`QueueDepth::delayed`]
    /// (see [`AmqpQueue::depth`]). Delays passed to `retry` are added as they
    /// are used.
    ///
    /// [`QueueDepth::delayed`]: relflow_queue::QueueDepth::delayed
    /// [`AmqpQueue::depth`]: crate::AmqpQueue::depth
    pub retry_delays: Vec<Duration>,
    /// How long to wait for a publisher confirm before treating the publish as
    /// failed (and retrying it).
    pub confirm_timeout: Duration,
    /// How many times a publish is tried (each on a healthy channel, after
    /// reconnecting if needed) before the error is returned.
    pub publish_attempts: u32,
    /// How long an operation other than `claim` keeps trying to (re)connect
    /// before it returns an error. `claim` uses its own `wait`.
    pub reconnect_timeout: Duration,
    /// First and maximum pause between reconnection attempts (doubling).
    pub reconnect_backoff: (Duration, Duration),
    /// Per-consumer delivery acknowledgement timeout, sent as the
    /// `x-consumer-timeout` consumer argument. Honoured by RabbitMQ >= 3.12
    /// (and 3.11.15+); older brokers ignore it and only the server-wide
    /// `consumer_timeout` of rabbitmq.conf applies (see README).
    pub consumer_timeout: Option<Duration>,
    /// Shown in the management UI and `rabbitmqctl list_connections`.
    pub connection_name: String,
    /// For `amqps://`: a CA bundle and a client certificate (SASL EXTERNAL).
    /// `None`: the system roots, and the URL's user and password.
    pub tls: Option<TlsOptions>,
}

impl Default for AmqpQueueOptions {
    fn default() -> Self {
        AmqpQueueOptions {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            failover_urls: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            prefix: String::new(),
            work_queue: "relflow.work".to_owned(),
            dead_queue: "relflow.dead".to_owned(),
            retry_queue_stem: "relflow.retry".to_owned(),
            prefetch: 1,
            retry_delays: Vec::new(),
            confirm_timeout: Duration::from_secs(30),
            publish_attempts: 3,
            reconnect_timeout: Duration::from_secs(30),
            reconnect_backoff: (Duration::from_millis(100), Duration::from_secs(10)),
            consumer_timeout: None,
            connection_name: "relflow".to_owned(),
            tls: None,
        }
    }
}

impl AmqpQueueOptions {
    /// Every address to try: `url`, then `failover_urls`.
    pub fn addresses(&self) -> Vec<&str> {
        std::iter::once(self.url.as_str()).chain(self.failover_urls.iter().map(String::as_str)).collect()
    }
}

impl fmt::Debug for AmqpQueueOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: show it redacted.
        f.debug_struct("AmqpQueueOptions")
            .field("url", &redact_url(&self.url))
            .field("failover_urls", &self.failover_urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>())
            .field("connect_timeout", &self.connect_timeout)
            .field("prefix", &self.prefix)
            .field("work_queue", &self.work_queue)
            .field("dead_queue", &self.dead_queue)
            .field("retry_queue_stem", &self.retry_queue_stem)
            .field("prefetch", &self.prefetch)
            .field("retry_delays", &self.retry_delays)
            .field("confirm_timeout", &self.confirm_timeout)
            .field("publish_attempts", &self.publish_attempts)
            .field("reconnect_timeout", &self.reconnect_timeout)
            .field("reconnect_backoff", &self.reconnect_backoff)
            .field("consumer_timeout", &self.consumer_timeout)
            .field("connection_name", &self.connection_name)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The name of the delay queue for `delay`: `30s`, `1500ms`, ...
pub fn delay_label(delay: Duration) -> String {
    let ms = duration_ms(delay);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Milliseconds, rounded up (a retry must never come back early).
pub(crate) fn duration_ms(d: Duration) -> u64 {
    let ms = d.as_millis();
    let ms = if Duration::from_millis(ms as u64) < d { ms + 1 } else { ms };
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_rounding() {
        assert_eq!(delay_label(Duration::from_secs(30)), "30s");
        assert_eq!(delay_label(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_ms(Duration::from_micros(1001)), 2);
        assert_eq!(duration_ms(Duration::ZERO), 0);
    }

    #[test]
    fn debug_hides_the_password() {
        let opts = AmqpQueueOptions {
            url: "amqp://relflow:p@ss:w/rd@host/%2f".into(),
            failover_urls: vec!["amqp://relflow:s3cr3t@other/%2f".into()],
            ..Default::default()
        };
        let shown = format!("{opts:?}");
        assert!(shown.contains("amqp://relflow:***@host/%2f"), "{shown}");
        assert!(shown.contains("amqp://relflow:***@other/%2f"), "{shown}");
        assert!(!shown.contains("ss:w") && !shown.contains("s3cr3t"), "{shown}");
    }
}
