//! fedmsg over ZeroMQ: SUB to publishers, `[topic, envelope]` messages.
//!
//! fedmsg publishers bind a PUB socket and send every message as two frames:
//! the topic, then the JSON envelope. Subscribers connect and subscribe to
//! topic prefixes (the publisher filters). One SUB socket per endpoint, so a
//! publisher that is down never holds up the others; the `zeromq` crate
//! reconnects with backoff when a publisher restarts and re-sends the
//! subscriptions.
//!
//! fedmsg is fire-and-forget: a message published while nobody is connected
//! is gone, and there is nothing to ack. What arrives is handed to the sink
//! at once; if the work queue is down the sink's error is retried here (with
//! backoff) so the message is not dropped while we still hold it.
//!
//! Up to [`IN_FLIGHT`] received messages are handed over at once: their
//! enqueues reach the embedded queue's writer together and share one
//! transaction and fsync (group commit), instead of one fsync each. Their
//! sequence numbers are still checked in the order received.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use relflow_core::config::ingest::FedmsgSource;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zeromq::{Socket, SocketRecv, SubSocket, ZmqMessage};

use crate::sink::{Envelope, Outcome, Sink};
use crate::Source;

/// Messages of one subscriber being verified and enqueued at once. Enough
/// to fill the queue writer's batches; bounded so a flood waits in ZeroMQ's
/// buffers, not in memory here.
const IN_FLIGHT: usize = 64;

/// A fedmsg `[[source]]`.
pub struct ZmqSource {
    config: FedmsgSource,
}

impl ZmqSource {
    pub fn new(config: FedmsgSource) -> ZmqSource {
        ZmqSource { config }
    }
}

#[async_trait]
impl Source for ZmqSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn run(self: Box<Self>, sink: Sink, shutdown: CancellationToken) -> anyhow::Result<()> {
        let label = format!("fedmsg:{}", self.config.name);
        let mut tasks = tokio::task::JoinSet::new();
        for endpoint in &self.config.endpoints {
            let sub = Subscriber {
                label: label.clone(),
                endpoint: endpoint.clone(),
                topics: self.config.topics.clone(),
                require_signature: self.config.require_signature,
            };
            tasks.spawn(Arc::new(sub).run(sink.clone(), shutdown.clone()));
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok(())
    }
}

/// One endpoint's SUB socket.
struct Subscriber {
    label: String,
    endpoint: String,
    topics: Vec<String>,
    require_signature: bool,
}

impl Subscriber {
    async fn run(self: Arc<Self>, sink: Sink, shutdown: CancellationToken) -> anyhow::Result<()> {
        let prefixes = if self.topics.is_empty() { vec![String::new()] } else { self.topics.clone() };
        let Some(mut socket) = self.connect(&sink, &prefixes, &shutdown).await? else {
            return Ok(());
        };
        let prefixes = Arc::new(prefixes);
        // Handled at once, but sequenced in the order received: the gap
        // tracker must see each producer's `i` as the publisher sent it.
        // The channel's bound is the number in flight.
        let (handed, mut handles) = tokio::sync::mpsc::channel::<JoinHandle<Option<Sequenced>>>(IN_FLIGHT);
        let sequencer = {
            let (sink, label) = (sink.clone(), self.label.clone());
            tokio::spawn(async move {
                while let Some(handle) = handles.recv().await {
                    if let Ok(Some(s)) = handle.await {
                        sink.sequence(&label, &s.producer, s.i, s.ts);
                    }
                }
            })
        };
        let mut up = true;
        loop {
            let received = tokio::select! {
                r = socket.recv() => r,
                _ = shutdown.cancelled() => break,
            };
            if received.is_ok() != up {
                up = received.is_ok();
                let state = received.as_ref().map(|_| ()).map_err(|e| format!("publisher went away: {e}"));
                sink.link(&self.label, &self.endpoint, state);
            }
            match received {
                Ok(frames) => {
                    let (me, sink, shutdown, prefixes) =
                        (Arc::clone(&self), sink.clone(), shutdown.clone(), Arc::clone(&prefixes));
                    let handle = tokio::spawn(async move { me.handle(&sink, &shutdown, frames, &prefixes).await });
                    if handed.send(handle).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    // A publisher went away: the socket reconnects by itself.
                    tracing::debug!(source = %self.label, endpoint = %self.endpoint, "receive: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        }
        // What was received is still handed over (or retried until shutdown).
        drop(handed);
        sequencer.await?;
        socket.close().await;
        Ok(())
    }

    /// A socket connected to the publisher, retrying with backoff for as
    /// long as it takes: a publisher down at start-up must not stop the
    /// process (nor the other sources and the HTTP API with it). `None`:
    /// shut down first.
    async fn connect(
        &self,
        sink: &Sink,
        prefixes: &[String],
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<SubSocket>> {
        let mut delay = Duration::from_secs(1);
        loop {
            let mut socket = SubSocket::new();
            // Remembered by the socket and sent to every (re)connected publisher.
            for t in prefixes {
                socket.subscribe(t).await?;
            }
            tracing::info!(source = %self.label, endpoint = %self.endpoint, "connecting");
            // zeromq retries inside `connect` for its connect timeout (30 s), then gives up.
            let result = tokio::select! {
                r = socket.connect(&self.endpoint) => r,
                _ = shutdown.cancelled() => return Ok(None),
            };
            match result {
                Ok(()) => {
                    tracing::info!(source = %self.label, endpoint = %self.endpoint, "connected");
                    sink.link(&self.label, &self.endpoint, Ok(()));
                    return Ok(Some(socket));
                }
                Err(e) => {
                    tracing::warn!(
                        source = %self.label, endpoint = %self.endpoint,
                        "cannot connect: {e}; retrying in {delay:?} (check the endpoint is tcp://host:port)"
                    );
                    sink.link(&self.label, &self.endpoint, Err(format!("cannot connect: {e}")));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return Ok(None),
            }
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }

    /// Hands one received message to the sink; what to sequence if it was
    /// queued.
    async fn handle(
        &self,
        sink: &Sink,
        shutdown: &CancellationToken,
        frames: ZmqMessage,
        prefixes: &[String],
    ) -> Option<Sequenced> {
        let (topic, body) = match (frames.len(), frames.get(0), frames.get(1)) {
            (2, Some(t), Some(b)) => (t.clone(), b.clone()),
            (n, ..) => {
                let reason = format!("expected two frames [topic, JSON envelope], got {n}");
                sink.reject(&self.label, None, None, "frames", reason);
                return None;
            }
        };
        // Publishers filter, but a misbehaving one might not.
        if !prefixes.iter().any(|p| topic.starts_with(p.as_bytes())) {
            return None;
        }
        let mut delay = Duration::from_millis(100);
        loop {
            let envelope = Envelope {
                source: &self.label,
                bytes: &body,
                require_signature: self.require_signature,
                frame_topic: Some(&topic),
            };
            match sink.submit_envelope(envelope).await {
                Ok(Outcome::Queued) => return self.sequence(sink, &body),
                Ok(_) => return None,
                Err(e) => {
                    tracing::error!(source = %self.label, "{e}; retrying in {delay:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => return None,
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// The queued envelope's producer and `i`, to check against the
    /// producer's last one (see [`crate::gaps`]).
    fn sequence(&self, sink: &Sink, body: &[u8]) -> Option<Sequenced> {
        let envelope = serde_json::from_slice::<serde_json::Value>(body).ok()?;
        // The signer names the producer; the sink verified the signature
        // already but keeps no result, and one more check of a message it
        // queued is cheap next to the enqueue.
        let signer = match (self.require_signature, sink.verifier()) {
            (true, Some(v)) => v.verify(body).ok().map(|s| s.common_name),
            _ => None,
        };
        let (producer, i) = crate::gaps::sequence_of(&self.endpoint, signer.as_deref(), &envelope)?;
        let ts = envelope.get("timestamp").and_then(serde_json::Value::as_f64);
        Some(Sequenced { producer, i, ts })
    }
}

/// A queued message's place in its producer's sequence.
struct Sequenced {
    producer: String,
    i: u64,
    ts: Option<f64>,
}
