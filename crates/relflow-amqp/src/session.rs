//! The connection: one [`Session`] at a time (a connection and its
//! confirm-mode publish channel), reopened lazily with a backoff shared by
//! every caller, and the topology declared on every new connection.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use relflow_core::redact::redact_url;
use relflow_queue::{QueueDepth, QueueError, Result};
use tokio::time::Instant;

use crate::connect::connect;
use crate::queue::{backend, AmqpQueue};

/// One live connection with its confirm-mode publishing channel.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) generation: u64,
    pub(crate) conn: Arc<Connection>,
    pub(crate) publish: Channel,
}

impl Session {
    fn healthy(&self) -> bool {
        self.conn.status().connected() && self.publish.status().connected()
    }
}

pub(crate) struct ConnState {
    session: Option<Session>,
    generation: u64,
    /// Earliest time of the next connection attempt, and the pause after it.
    next_attempt: Option<Instant>,
    backoff: Duration,
    /// Index (in [`AmqpQueueOptions::addresses`]) of the address that
    /// connected last: the next connect starts there.
    ///
    /// [`AmqpQueueOptions::addresses`]: crate::AmqpQueueOptions::addresses
    address: usize,
}

impl ConnState {
    pub(crate) fn new(backoff: Duration) -> Self {
        ConnState { session: None, generation: 0, next_attempt: None, backoff, address: 0 }
    }

    fn connected(&mut self, session: Session, first_backoff: Duration) -> Session {
        self.generation += 1;
        self.next_attempt = None;
        self.backoff = first_backoff;
        if self.generation > 1 {
            tracing::info!(generation = self.generation, "rabbitmq: reconnected");
        }
        self.session = Some(session.clone());
        session
    }

    /// Schedules the next attempt after a failed one; returns the pause.
    fn back_off(&mut self, max: Duration) -> Duration {
        let pause = self.backoff;
        self.backoff = (pause * 2).min(max);
        self.next_attempt = Some(Instant::now() + pause);
        pause
    }
}

impl AmqpQueue {
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
        self.lock_in_flight().clear();
        if let Some(session) = session {
            let _ = session.conn.close(200, "relflow: closing".into()).await;
        }
    }

    pub(crate) async fn session(&self) -> Result<Session> {
        self.session_until(Instant::now() + self.opts.reconnect_timeout).await
    }

    /// A healthy session, reconnecting (with backoff) until `deadline`.
    pub(crate) async fn session_until(&self, deadline: Instant) -> Result<Session> {
        let mut state = self.conn.lock().await;
        if let Some(session) = self.reuse(&mut state).await {
            return Ok(session);
        }
        self.reconnect(&mut state, deadline).await
    }

    /// The current session if it is healthy or can be made so; otherwise it
    /// is dropped.
    async fn reuse(&self, state: &mut ConnState) -> Option<Session> {
        let session = state.session.clone()?;
        if session.healthy() {
            return Some(session);
        }
        if session.conn.status().connected() {
            // Only the publish channel broke (a channel error): reopen it.
            match self.open_publish_channel(&session.conn).await {
                Ok(publish) => {
                    let session = Session { publish, ..session };
                    state.session = Some(session.clone());
                    return Some(session);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "rabbitmq: cannot reopen the publish channel")
                }
            }
        }
        tracing::warn!("rabbitmq: connection lost, reconnecting");
        state.session = None;
        None
    }

    async fn reconnect(&self, state: &mut ConnState, deadline: Instant) -> Result<Session> {
        loop {
            if let Some(at) = state.next_attempt {
                if at > deadline {
                    return Err(QueueError::Backend(
                        "rabbitmq: not connected (waiting to reconnect with backoff)".to_owned(),
                    ));
                }
                tokio::time::sleep_until(at).await;
            }
            match self.open_any(state.generation + 1, state.address).await {
                Ok((session, address)) => {
                    state.address = address;
                    return Ok(state.connected(session, self.opts.reconnect_backoff.0));
                }
                Err(err @ QueueError::Refused(_)) => return Err(err),
                Err(err) => {
                    let pause = state.back_off(self.opts.reconnect_backoff.1);
                    tracing::warn!(error = %err, retry_in = ?pause, "rabbitmq: cannot connect");
                    if Instant::now() + pause > deadline {
                        return Err(err);
                    }
                }
            }
        }
    }

    /// One session on the first address that works, starting at `first`
    /// and going round the list once. Refused only if every address refused
    /// (a node still booting may refuse what the others accept).
    async fn open_any(&self, generation: u64, first: usize) -> Result<(Session, usize)> {
        let addresses = self.opts.addresses();
        let mut errors = Vec::new();
        let mut refused = true;
        for i in (0..addresses.len()).map(|k| (first + k) % addresses.len()) {
            let url = addresses[i];
            let attempt = tokio::time::timeout(self.opts.connect_timeout, self.open_session(url, generation));
            let err = match attempt.await {
                Ok(Ok(session)) => return Ok((session, i)),
                Ok(Err(err)) => err,
                Err(_) => QueueError::Backend(format!(
                    "rabbitmq: {}: no session within {:?}",
                    redact_url(url),
                    self.opts.connect_timeout
                )),
            };
            if addresses.len() > 1 {
                tracing::warn!(error = %err, "rabbitmq: cannot connect, trying the next address");
            }
            refused &= matches!(err, QueueError::Refused(_));
            errors.push(err);
        }
        if errors.len() == 1 {
            return Err(errors.remove(0));
        }
        // Each error's own words, without the wrapper's prefix every time.
        let words = |e: &QueueError| match e {
            QueueError::Backend(text) | QueueError::Refused(text) => text.clone(),
            other => other.to_string(),
        };
        let text = errors.iter().map(words).collect::<Vec<_>>().join("; ");
        Err(if refused { QueueError::Refused(text) } else { QueueError::Backend(text) })
    }

    async fn open_session(&self, url: &str, generation: u64) -> Result<Session> {
        let props = ConnectionProperties::default().with_connection_name(self.opts.connection_name.clone().into());
        let conn = connect(url, self.opts.tls.as_ref(), props).await.map_err(|e| {
            if e.is_refused() {
                QueueError::Refused(format!(
                    "rabbitmq: {e} (check the user, password and vhost in [queue] url or urls)"
                ))
            } else {
                QueueError::Backend(format!("rabbitmq: {e}"))
            }
        })?;
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
    pub(crate) async fn declare_topology(&self, channel: &Channel) -> Result<()> {
        declare(channel, &self.work, quorum_args()).await?;
        declare(channel, &self.dead, quorum_args()).await?;
        let delays: Vec<u64> = self.lock_delays().iter().copied().collect();
        for ms in delays {
            self.declare_retry_queue(channel, ms).await?;
        }
        Ok(())
    }

    pub(crate) async fn declare_retry_queue(&self, channel: &Channel, ms: u64) -> Result<String> {
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

    /// A throwaway channel for admin work (passive declares, basic.get scans,
    /// purges): a channel error there (404 on a passive declare) must not take
    /// the publish channel down with it.
    pub(crate) async fn admin_channel(&self) -> Result<Channel> {
        let session = self.session().await?;
        session.conn.create_channel().await.map_err(|e| backend("open channel", e))
    }

    /// The broker's counts of ready messages; `in_flight` is left at 0.
    pub(crate) async fn count_queues(&self) -> Result<QueueDepth> {
        let mut channel = self.admin_channel().await?;
        let passive = |e: lapin::Error| backend("queue.declare (passive)", e);
        let ready = ready_count(&channel, &self.work).await.map_err(passive)?;
        let dead = ready_count(&channel, &self.dead).await.map_err(passive)?;
        let mut delayed = 0;
        let delays: Vec<u64> = self.lock_delays().iter().copied().collect();
        for ms in delays {
            match ready_count(&channel, &self.retry_queue_name(Duration::from_millis(ms))).await {
                Ok(n) => delayed += n,
                // 404: that delay queue does not exist (yet); the error
                // closed the channel, so take a new one.
                Err(_) => channel = self.admin_channel().await?,
            }
        }
        let _ = channel.close(200, "relflow: depth".into()).await;
        Ok(QueueDepth { ready, in_flight: 0, delayed, dead })
    }
}

/// Ready messages in `name`, by a passive declare (which fails, closing the
/// channel, if the queue does not exist).
pub(crate) async fn ready_count(channel: &Channel, name: &str) -> lapin::Result<u64> {
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(name.into(), passive, FieldTable::default()).await.map(|q| u64::from(q.message_count()))
}

pub(crate) async fn declare(channel: &Channel, name: &str, args: FieldTable) -> Result<()> {
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await
        .map(|_| ())
        .map_err(|e| backend(&format!("declare queue {name}"), e))
}

pub(crate) fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    args
}
