//! RabbitMQ backend of relflow's work queue ([`WorkQueue`]), on `lapin`.
//!
//! See `README.md` next to this crate for the topology diagram, the
//! confirm-then-ack ordering and the `consumer_timeout` story. In short:
//!
//! * `<prefix>relflow.work`: durable quorum queue, the work queue. Workers
//!   consume it with manual acks and `basic.qos(prefetch)`.
//! * `<prefix>relflow.retry.<delay>`: one durable quorum queue per retry delay,
//!   with `x-message-ttl = delay` and at-least-once dead-lettering back to the
//!   work queue. Every message in such a queue has the same TTL, so the head of
//!   the queue is always the first to expire and a long delay can never hold
//!   back a short one (which is what goes wrong with per-message `expiration`
//!   on one shared delay queue).
//! * `<prefix>relflow.dead`: durable quorum queue of dead letters, each with
//!   `x-relflow-reason`, `x-relflow-attempt`, `x-relflow-dead-id` and
//!   `x-relflow-dead-at` headers.
//!
//! Every publish is persistent (`delivery_mode = 2`), `mandatory`, and waits
//! for its publisher confirm; a nack, a return (unroutable), a timeout or a
//! lost connection is retried on a fresh channel and, when the attempts run
//! out, returned as an error. Nothing is dropped silently.
//!
//! `retry`, `dead_letter` and `replay` publish the new copy (confirmed) and
//! only then ack the original: a crash in between leaves both copies, so the
//! worst case is a duplicate, never a loss.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer};
use relflow_queue::{DeadLetter, Delivery, QueueDepth, QueueError, Result, WorkQueue};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Header carrying the attempt number (absent = 1).
pub const HEADER_ATTEMPT: &str = "x-relflow-attempt";
/// Header carrying the reason of the last failure (retry) or of the dead-lettering.
pub const HEADER_REASON: &str = "x-relflow-reason";
/// Header carrying the stable id of a dead letter (a signed 64-bit integer).
pub const HEADER_DEAD_ID: &str = "x-relflow-dead-id";
/// Header carrying when a message was dead-lettered (milliseconds since the epoch).
pub const HEADER_DEAD_AT: &str = "x-relflow-dead-at";
/// Header set on a replayed message: the dead-letter id it came from.
pub const HEADER_REPLAYED_FROM: &str = "x-relflow-replayed-from";

/// Reasons longer than this are truncated in headers: the whole header block
/// of a message has to fit in one AMQP frame.
const MAX_REASON_BYTES: usize = 8 * 1024;

/// Headers set by the broker (or by an earlier life of the message) that must
/// not travel to a new copy of it.
const BROKER_HEADERS: &[&str] = &[
    "x-delivery-count",
    "x-acquired-count",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];

/// How to reach RabbitMQ and what to call things there.
#[derive(Clone)]
pub struct AmqpQueueOptions {
    /// AMQP URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`. Query
    /// parameters such as `?heartbeat=30` are honoured by lapin.
    pub url: String,
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
}

impl Default for AmqpQueueOptions {
    fn default() -> Self {
        AmqpQueueOptions {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
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
        }
    }
}

impl fmt::Debug for AmqpQueueOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: show it redacted.
        f.debug_struct("AmqpQueueOptions")
            .field("url", &redact_url(&self.url))
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
            .finish()
    }
}

fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_owned(),
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
fn duration_ms(d: Duration) -> u64 {
    let ms = d.as_millis();
    let ms = if Duration::from_millis(ms as u64) < d { ms + 1 } else { ms };
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// One live connection with its confirm-mode publishing channel.
#[derive(Clone)]
struct Session {
    generation: u64,
    conn: Arc<Connection>,
    publish: Channel,
}

impl Session {
    fn healthy(&self) -> bool {
        self.conn.status().connected() && self.publish.status().connected()
    }
}

struct ConnState {
    session: Option<Session>,
    generation: u64,
    /// Earliest time of the next connection attempt, and the pause after it.
    next_attempt: Option<Instant>,
    backoff: Duration,
}

/// The consumer of the work queue, created lazily by `claim`.
struct ConsumerSlot {
    generation: u64,
    channel: Channel,
    consumer: Consumer,
}

/// What the queue remembers about a delivery it handed out.
struct InFlight {
    generation: u64,
    channel: Channel,
    delivery_tag: u64,
    headers: FieldTable,
}

/// The RabbitMQ work queue. Cheap to share behind an `Arc`; every method
/// reconnects on its own when the connection was lost.
pub struct AmqpQueue {
    opts: AmqpQueueOptions,
    work: String,
    dead: String,
    conn: Mutex<ConnState>,
    consumer: Mutex<Option<ConsumerSlot>>,
    in_flight: StdMutex<HashMap<u64, InFlight>>,
    next_tag: AtomicU64,
    delays: StdMutex<BTreeSet<u64>>,
    dead_ids: DeadIds,
}

impl fmt::Debug for AmqpQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpQueue").field("opts", &self.opts).finish_non_exhaustive()
    }
}

fn backend(context: &str, err: impl fmt::Display) -> QueueError {
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
            conn: Mutex::new(ConnState { session: None, generation: 0, next_attempt: None, backoff }),
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

    /// How many connections this queue has opened so far (1 after the first
    /// connect; +1 for every reconnection). For logs, metrics and tests.
    pub async fn connection_generation(&self) -> u64 {
        self.conn.lock().await.generation
    }

    /// The heartbeat interval (seconds) negotiated on the current connection,
    /// `None` when not connected. 0 means heartbeats are off.
    pub async fn heartbeat(&self) -> Option<u16> {
        let state = self.conn.lock().await;
        state.session.as_ref().filter(|s| s.healthy()).map(|s| s.conn.configuration().heartbeat())
    }

    /// Close the connection. Unacked deliveries go back to the queue (the
    /// broker redelivers them); the next operation reconnects.
    pub async fn close(&self) {
        *self.consumer.lock().await = None;
        let session = self.conn.lock().await.session.take();
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(session) = session {
            let _ = session.conn.close(200, "relflow: closing".into()).await;
        }
    }

    // ---- connection management -------------------------------------------

    async fn session(&self) -> Result<Session> {
        self.session_until(Instant::now() + self.opts.reconnect_timeout).await
    }

    /// A healthy session, reconnecting (with backoff) until `deadline`.
    async fn session_until(&self, deadline: Instant) -> Result<Session> {
        let mut state = self.conn.lock().await;
        if let Some(session) = &state.session {
            if session.healthy() {
                return Ok(session.clone());
            }
            if session.conn.status().connected() {
                // Only the publish channel broke (a channel error): reopen it.
                match self.open_publish_channel(&session.conn).await {
                    Ok(publish) => {
                        let session = Session { publish, ..session.clone() };
                        state.session = Some(session.clone());
                        return Ok(session);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "rabbitmq: cannot reopen the publish channel")
                    }
                }
            }
            tracing::warn!("rabbitmq: connection lost, reconnecting");
            state.session = None;
        }
        loop {
            if let Some(at) = state.next_attempt {
                if at > deadline {
                    return Err(QueueError::Backend(
                        "rabbitmq: not connected (waiting to reconnect with backoff)".to_owned(),
                    ));
                }
                tokio::time::sleep_until(at).await;
            }
            match self.open_session(state.generation + 1).await {
                Ok(session) => {
                    state.generation += 1;
                    state.next_attempt = None;
                    state.backoff = self.opts.reconnect_backoff.0;
                    if state.generation > 1 {
                        tracing::info!(generation = state.generation, "rabbitmq: reconnected");
                    }
                    state.session = Some(session.clone());
                    return Ok(session);
                }
                Err(err) => {
                    let pause = state.backoff;
                    state.backoff = (pause * 2).min(self.opts.reconnect_backoff.1);
                    state.next_attempt = Some(Instant::now() + pause);
                    tracing::warn!(error = %err, retry_in = ?pause, "rabbitmq: cannot connect");
                    if Instant::now() + pause > deadline {
                        return Err(err);
                    }
                }
            }
        }
    }

    async fn open_session(&self, generation: u64) -> Result<Session> {
        let props = ConnectionProperties::default().with_connection_name(self.opts.connection_name.clone().into());
        let conn = Connection::connect(&self.opts.url, props)
            .await
            .map_err(|e| backend(&format!("connect to {}", redact_url(&self.opts.url)), e))?;
        let publish = self.open_publish_channel(&conn).await?;
        self.declare_topology(&publish).await?;
        Ok(Session { generation, conn: Arc::new(conn), publish })
    }

    async fn open_publish_channel(&self, conn: &Connection) -> Result<Channel> {
        let channel = conn.create_channel().await.map_err(|e| backend("open channel", e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| backend("enable publisher confirms", e))?;
        Ok(channel)
    }

    /// Declare the work and dead queues and the known delay queues.
    async fn declare_topology(&self, channel: &Channel) -> Result<()> {
        declare(channel, &self.work, quorum_args()).await?;
        declare(channel, &self.dead, quorum_args()).await?;
        let delays: Vec<u64> = self.lock_delays().iter().copied().collect();
        for ms in delays {
            self.declare_retry_queue(channel, ms).await?;
        }
        Ok(())
    }

    async fn declare_retry_queue(&self, channel: &Channel, ms: u64) -> Result<String> {
        let name = self.retry_queue_name(Duration::from_millis(ms));
        let mut args = quorum_args();
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms as i64));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(self.work.as_str().into()));
        // At-least-once dead-lettering (quorum queues, RabbitMQ >= 3.10): the
        // expired message leaves the delay queue only once the work queue has
        // confirmed it. It requires `reject-publish` overflow.
        args.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
        args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
        declare(channel, &name, args).await?;
        Ok(name)
    }

    fn lock_delays(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.delays.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<u64, InFlight>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A throwaway channel for admin work (passive declares, basic.get scans,
    /// purges): a channel error there (404 on a passive declare) must not take
    /// the publish channel down with it.
    async fn admin_channel(&self) -> Result<Channel> {
        let session = self.session().await?;
        session.conn.create_channel().await.map_err(|e| backend("open channel", e))
    }

    // ---- publishing --------------------------------------------------------

    /// Publish with confirm; retried on a fresh channel/connection on nack,
    /// return, timeout or connection loss. With `retry_ms`, the delay queue is
    /// (re)declared before every attempt.
    async fn publish(&self, queue: &str, payload: &[u8], headers: FieldTable, retry_ms: Option<u64>) -> Result<()> {
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
        let confirm = session
            .publish
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions { mandatory: true, immediate: false },
                payload,
                props,
            )
            .await
            .map_err(|e| backend("publish", e))?;
        let confirmation = tokio::time::timeout(self.opts.confirm_timeout, confirm)
            .await
            .map_err(|_| {
                QueueError::Backend(format!("rabbitmq: no publisher confirm within {:?}", self.opts.confirm_timeout))
            })?
            .map_err(|e| backend("publisher confirm", e))?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                if returned.reply_code == 312 {
                    // NO_ROUTE: the queue is gone. Redeclare the topology so
                    // the next attempt can succeed.
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

    // ---- consuming -----------------------------------------------------------

    async fn open_consumer(&self, deadline: Instant) -> Result<ConsumerSlot> {
        let session = self.session_until(deadline).await?;
        let channel = session.conn.create_channel().await.map_err(|e| backend("open channel", e))?;
        channel
            .basic_qos(self.opts.prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(|e| backend("basic.qos", e))?;
        // Idempotent; recreates the work queue if it was deleted under us.
        declare(&channel, &self.work, quorum_args()).await?;
        let mut args = FieldTable::default();
        if let Some(timeout) = self.opts.consumer_timeout {
            args.insert("x-consumer-timeout".into(), AMQPValue::LongLongInt(duration_ms(timeout) as i64));
        }
        let consumer = channel
            .basic_consume(self.work.as_str().into(), "".into(), BasicConsumeOptions::default(), args)
            .await
            .map_err(|e| backend("basic.consume", e))?;
        Ok(ConsumerSlot { generation: session.generation, channel, consumer })
    }

    async fn claim_inner(&self, deadline: Instant) -> Result<Option<Delivery>> {
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
                Some(Ok(d)) => {
                    let headers = d.properties.headers().clone().unwrap_or_default();
                    let attempt = header_u64(&headers, HEADER_ATTEMPT).map_or(1, |a| a.max(1)) as u32;
                    let redeliveries = header_u64(&headers, "x-delivery-count")
                        .unwrap_or(0)
                        .max(header_u64(&headers, "x-acquired-count").unwrap_or(0));
                    let deliveries = (redeliveries + 1).min(u64::from(u32::MAX)) as u32;
                    let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
                    self.lock_in_flight().insert(
                        tag,
                        InFlight {
                            generation: current.generation,
                            channel: current.channel.clone(),
                            delivery_tag: d.delivery_tag,
                            headers,
                        },
                    );
                    return Ok(Some(Delivery { tag, payload: d.data, attempt, deliveries }));
                }
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

    /// Forget `delivery` and return what is needed to settle it.
    fn take_in_flight(&self, delivery: &Delivery) -> Result<InFlight> {
        self.lock_in_flight().remove(&delivery.tag).ok_or_else(|| {
            QueueError::Backend(format!(
                "rabbitmq: delivery {} is not held by this queue (already settled?)",
                delivery.tag
            ))
        })
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

    async fn ack_held(&self, held: &InFlight) -> Result<()> {
        self.check_channel(held)?;
        held.channel.basic_ack(held.delivery_tag, BasicAckOptions::default()).await.map_err(|e| backend("basic.ack", e))
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
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        while Instant::now() < deadline {
            match channel.queue_declare(self.dead.as_str().into(), passive, FieldTable::default()).await {
                Ok(q) if q.message_count() as usize >= returned => break,
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => return,
            }
        }
        let _ = channel.close(200, "relflow: settled".into()).await;
    }

    /// Scan the dead queue with basic.get (unacked) on a throwaway channel.
    /// `stop` ends the scan early. The channel is returned so the caller can
    /// ack some and close it, which requeues the rest.
    async fn scan_dead(
        &self,
        mut stop: impl FnMut(&DeadLetter) -> bool,
    ) -> Result<(Channel, Vec<(u64, DeadLetter, FieldTable)>)> {
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
        let held = self.lock_in_flight().get(&delivery.tag).map(|h| h.channel.status().connected());
        match held {
            Some(true) => Ok(()),
            Some(false) => Err(QueueError::Backend(
                "rabbitmq: the channel of this delivery was closed; the broker will deliver it again".to_owned(),
            )),
            None => Err(QueueError::Backend(format!("rabbitmq: delivery {} is not held by this queue", delivery.tag))),
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<()> {
        let held = self.take_in_flight(delivery)?;
        self.ack_held(&held).await
    }

    async fn retry(&self, delivery: &Delivery, delay: Duration, reason: &str) -> Result<()> {
        let held = self.take_in_flight(delivery)?;
        let mut headers = carried_headers(&held.headers);
        headers.insert(HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(i64::from(delivery.attempt.saturating_add(1))));
        headers.insert(HEADER_REASON.into(), AMQPValue::LongString(truncate(reason).into()));
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

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let held = self.take_in_flight(delivery)?;
        let mut headers = carried_headers(&held.headers);
        headers.insert(HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(i64::from(delivery.attempt.max(1))));
        headers.insert(HEADER_REASON.into(), AMQPValue::LongString(truncate(reason).into()));
        headers.insert(HEADER_DEAD_ID.into(), AMQPValue::LongLongInt(self.dead_ids.next() as i64));
        headers.insert(HEADER_DEAD_AT.into(), AMQPValue::LongLongInt(now_ms() as i64));
        if let Err(err) = self.publish(&self.dead, &delivery.payload, headers, None).await {
            self.lock_in_flight().insert(delivery.tag, held);
            return Err(err);
        }
        self.ack_held(&held).await
    }

    async fn release(&self, delivery: &Delivery) -> Result<()> {
        let held = self.take_in_flight(delivery)?;
        self.check_channel(&held)?;
        held.channel
            .basic_nack(held.delivery_tag, BasicNackOptions { multiple: false, requeue: true })
            .await
            .map_err(|e| backend("basic.nack", e))
    }

    /// `ready` and `dead` are the broker's counts of ready messages (passive
    /// declares). `delayed` sums the delay queues this process knows about:
    /// the configured `retry_delays` plus the delays it has retried with.
    /// `in_flight` is per process: the deliveries this instance holds.
    async fn depth(&self) -> Result<QueueDepth> {
        let mut channel = self.admin_channel().await?;
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let count = |channel: Channel, name: String| async move {
            channel
                .queue_declare(name.as_str().into(), passive, FieldTable::default())
                .await
                .map(|q| u64::from(q.message_count()))
        };
        let ready =
            count(channel.clone(), self.work.clone()).await.map_err(|e| backend("queue.declare (passive)", e))?;
        let dead =
            count(channel.clone(), self.dead.clone()).await.map_err(|e| backend("queue.declare (passive)", e))?;
        let mut delayed = 0;
        let delays: Vec<u64> = self.lock_delays().iter().copied().collect();
        for ms in delays {
            match count(channel.clone(), self.retry_queue_name(Duration::from_millis(ms))).await {
                Ok(n) => delayed += n,
                // 404: that delay queue does not exist (yet); the error
                // closed the channel, so take a new one.
                Err(_) => channel = self.admin_channel().await?,
            }
        }
        let _ = channel.close(200, "relflow: depth".into()).await;
        let in_flight = self.lock_in_flight().len() as u64;
        Ok(QueueDepth { ready, in_flight, delayed, dead })
    }

    /// Reads the whole dead queue with basic.get (no ack) on a throwaway
    /// channel, then closes the channel, which puts every message back.
    /// While the scan runs, the dead letters are invisible to other scans.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let (channel, found) = self.scan_dead(|_| false).await?;
        let _ = channel.close(200, "relflow: dead letters listed".into()).await;
        self.settle_dead(found.len()).await;
        let mut letters: Vec<DeadLetter> = found.into_iter().map(|(_, letter, _)| letter).collect();
        letters.sort_by_key(|l| (l.dead_at, l.id));
        letters.truncate(limit);
        Ok(letters)
    }

    async fn replay(&self, id: u64) -> Result<bool> {
        let (channel, found) = self.scan_dead(|l| l.id == id).await?;
        let scanned = found.len();
        let hit = found.into_iter().find(|(_, l, _)| l.id == id);
        let result = match hit {
            None => Ok(false),
            Some((tag, letter, headers)) => {
                // A fresh first attempt: no attempt header, no dead-letter headers.
                let mut fresh = FieldTable::default();
                for (k, v) in carried_headers(&headers).inner() {
                    if ![HEADER_ATTEMPT, HEADER_REASON, HEADER_DEAD_ID, HEADER_DEAD_AT].contains(&k.as_str()) {
                        fresh.insert(k.clone(), v.clone());
                    }
                }
                fresh.insert(HEADER_REPLAYED_FROM.into(), AMQPValue::LongLongInt(id as i64));
                match self.publish(&self.work, &letter.payload, fresh, None).await {
                    // Confirmed on the work queue: now remove the dead letter.
                    Ok(()) => channel
                        .basic_ack(tag, BasicAckOptions::default())
                        .await
                        .map(|()| true)
                        .map_err(|e| backend("basic.ack (dead letter)", e)),
                    Err(err) => Err(err),
                }
            }
        };
        // Closing the scan channel requeues every other dead letter.
        let _ = channel.close(200, "relflow: replay".into()).await;
        self.settle_dead(scanned - usize::from(matches!(result, Ok(true)))).await;
        result
    }

    async fn purge_dead_letters(&self) -> Result<u64> {
        let channel = self.admin_channel().await?;
        let n = channel
            .queue_purge(self.dead.as_str().into(), QueuePurgeOptions::default())
            .await
            .map_err(|e| backend("queue.purge", e))?;
        let _ = channel.close(200, "relflow: purge".into()).await;
        Ok(u64::from(n))
    }
}

async fn declare(channel: &Channel, name: &str, args: FieldTable) -> Result<()> {
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await
        .map(|_| ())
        .map_err(|e| backend(&format!("declare queue {name}"), e))
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    args
}

/// The headers a new copy of a message keeps: ours, minus the broker's.
fn carried_headers(headers: &FieldTable) -> FieldTable {
    let mut out = FieldTable::default();
    for (k, v) in headers.inner() {
        if !BROKER_HEADERS.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

fn header_u64(headers: &FieldTable, name: &str) -> Option<u64> {
    match headers.inner().get(name)? {
        AMQPValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::Timestamp(v) => Some(*v),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.trim().parse().ok(),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        _ => None,
    }
}

fn header_string(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
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
        attempt: header_u64(headers, HEADER_ATTEMPT).map_or(1, |a| a.max(1)) as u32,
        dead_at,
    }
}

fn truncate(reason: &str) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason.to_owned();
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &reason[..end])
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Dead-letter ids: `millis << 20 | salt << 8 | counter`, strictly increasing
/// within a process, roughly time-ordered across processes, and unique across
/// processes with overwhelming probability (a 12-bit per-process salt).
/// Always below 2^63, so they fit the signed 64-bit AMQP header.
struct DeadIds {
    last: AtomicU64,
    salt: u64,
}

impl DeadIds {
    fn new() -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let salt = (u64::from(std::process::id()) ^ u64::from(nanos) ^ (u64::from(nanos) >> 12)) & 0xfff;
        DeadIds { last: AtomicU64::new(0), salt }
    }

    fn next(&self) -> u64 {
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
    fn labels_and_rounding() {
        assert_eq!(delay_label(Duration::from_secs(30)), "30s");
        assert_eq!(delay_label(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_ms(Duration::from_micros(1001)), 2);
        assert_eq!(duration_ms(Duration::ZERO), 0);
    }

    #[test]
    fn dead_ids_increase_and_fit_i64() {
        let ids = DeadIds::new();
        let a = ids.next();
        let b = ids.next();
        assert!(b > a);
        assert!(b < i64::MAX as u64);
    }

    #[test]
    fn url_is_redacted() {
        assert_eq!(redact_url("amqp://guest:secret@host:5672/%2f"), "amqp://guest:***@host:5672/%2f");
        assert_eq!(redact_url("amqp://host"), "amqp://host");
    }

    #[test]
    fn broker_headers_are_not_carried() {
        let mut h = FieldTable::default();
        h.insert("x-delivery-count".into(), AMQPValue::LongLongInt(3));
        h.insert("x-death".into(), AMQPValue::Void);
        h.insert(HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(2));
        let c = carried_headers(&h);
        assert!(!c.contains_key("x-delivery-count"));
        assert!(!c.contains_key("x-death"));
        assert_eq!(header_u64(&c, HEADER_ATTEMPT), Some(2));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let t = truncate(&long);
        assert!(t.len() <= MAX_REASON_BYTES + 3);
        assert!(t.ends_with("..."));
    }
}
