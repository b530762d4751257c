//! The drainer: takes events out of the outbox and publishes them, one loop
//! per destination, so a broker that is down holds back only its own
//! events. Any worker may run one; the outbox's claims keep two from
//! publishing the same event (see `relflow_store::outbox`).
//!
//! A loop claims a batch, publishes it in order, marks sent what the
//! destination confirmed and gives the rest back with the error and a retry
//! time (exponential backoff, capped). It sleeps while there is nothing to
//! send, and wakes at once when this process writes an event
//! ([`Drainer::wake`]) or after [`POLL`] for other processes' events. A
//! second task bounds the outbox ([`Drainer::prune`]). Nothing here can
//! fail or slow a run: runs only ever write to the store.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use relflow_store::{Backlog, PendingEvent, RunStore, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::destination::Destination;

/// Events claimed and published at once.
const BATCH: usize = 50;
/// How long a claim holds: longer than publishing one batch can take.
const LEASE: Duration = Duration::from_secs(60);
/// How often an idle loop looks for events written by other processes.
pub const POLL: Duration = Duration::from_secs(1);
/// First and longest wait after a failed publish.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(15));
/// How often the outbox is pruned and its backlog reported.
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// Sent events are kept this long, so a late second write of an id (a
/// worker that died before settling its message) is still a no-op.
const KEEP_SENT: Duration = Duration::from_secs(24 * 3600);
/// On shutdown, how long the loops keep sending what is left.
const FLUSH: Duration = Duration::from_secs(5);

/// Told what the drainer did, for `/metrics`.
pub trait DrainObserver: Send + Sync {
    /// `n` events reached `destination`.
    fn sent(&self, destination: &str, n: u64);
    /// A publish to `destination` failed (its events wait for a retry).
    fn failed(&self, destination: &str);
    /// `n` unsent events were dropped to keep the outbox bounded.
    fn dropped(&self, n: u64);
    /// What is waiting, per destination (every prune).
    fn backlog(&self, backlog: &[Backlog]);
}

/// Why one batch did not go.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The run store (outbox) failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot publish to {destination}: {error}")]
    /// The destination did not take the batch.
    Publish {
        /// Its name.
        destination: &'static str,
        /// Why.
        error: String,
    },
}

/// Publishes the outbox to its destinations until stopped.
pub struct Drainer {
    store: Arc<dyn RunStore>,
    destinations: Vec<(Arc<dyn Destination>, Notify)>,
    claimant: String,
    max_pending: u64,
    observer: OnceLock<Arc<dyn DrainObserver>>,
}

impl Drainer {
    /// `claimant` names this drainer in the outbox's claims (unique per process).
    pub fn new(
        store: Arc<dyn RunStore>,
        destinations: Vec<Arc<dyn Destination>>,
        claimant: String,
        max_pending: u64,
    ) -> Drainer {
        let destinations = destinations.into_iter().map(|d| (d, Notify::new())).collect();
        Drainer { store, destinations, claimant, max_pending, observer: OnceLock::new() }
    }

    /// Reports to `observer` (the engine's metrics) from now on. One
    /// observer per drainer; a second call is ignored.
    pub fn observe(&self, observer: Arc<dyn DrainObserver>) {
        let _ = self.observer.set(observer);
    }

    /// The destinations' names.
    pub fn destinations(&self) -> Vec<&'static str> {
        self.destinations.iter().map(|(d, _)| d.name()).collect()
    }

    /// New events are in the outbox: send them now, not at the next poll.
    pub fn wake(&self) {
        for (_, wake) in &self.destinations {
            wake.notify_one();
        }
    }

    /// Runs every destination's loop and the pruning until `stop`, then
    /// sends what is left for a few seconds.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut tasks = JoinSet::new();
        for i in 0..self.destinations.len() {
            tasks.spawn(Arc::clone(&self).drain(i, stop.clone()));
        }
        tasks.spawn(Arc::clone(&self).prune(stop));
        while tasks.join_next().await.is_some() {}
    }

    async fn drain(self: Arc<Self>, i: usize, stop: CancellationToken) {
        let (destination, wake) = (&self.destinations[i].0, &self.destinations[i].1);
        let mut backoff = BACKOFF.0;
        while !stop.is_cancelled() {
            let pause = match self.once(destination.as_ref(), backoff).await {
                Ok(0) => POLL,
                Ok(_) => {
                    backoff = BACKOFF.0;
                    continue;
                }
                Err(e @ DrainError::Publish { .. }) => {
                    tracing::warn!("{e}; retrying in {backoff:?} (runs go on; the events wait in the outbox)");
                    let pause = backoff;
                    backoff = (backoff * 2).min(BACKOFF.1);
                    pause
                }
                Err(e) => {
                    tracing::warn!(destination = destination.name(), "announcements: {e}");
                    POLL
                }
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = wake.notified() => {}
            }
        }
        let flushed = tokio::time::timeout(FLUSH, async {
            while let Ok(n) = self.once(destination.as_ref(), backoff).await {
                if n == 0 {
                    break;
                }
            }
        });
        if flushed.await.is_err() {
            tracing::info!(destination = destination.name(), "stopping with announcements still to send");
        }
    }

    /// Claims and publishes one batch for `destination`; how many went.
    /// After a failure the rest waits `backoff` (for every drainer).
    pub async fn once(&self, destination: &dyn Destination, backoff: Duration) -> Result<usize, DrainError> {
        if !destination.ready().await {
            return Ok(0);
        }
        let name = destination.name();
        let batch = self.store.claim_events(name, &self.claimant, BATCH, LEASE).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let published = destination.publish(&batch).await;
        let (sent, rest) = batch.split_at(published.sent.min(batch.len()));
        if !sent.is_empty() {
            self.store.events_sent(name, &ids(sent)).await?;
            tracing::debug!(destination = name, n = sent.len(), "announced");
            if let Some(o) = self.observer.get() {
                o.sent(name, sent.len() as u64);
            }
        }
        let Some(error) = published.error.filter(|_| !rest.is_empty()) else { return Ok(sent.len()) };
        if let Some(o) = self.observer.get() {
            o.failed(name);
        }
        let retry_at = chrono::Utc::now() + chrono::Duration::from_std(backoff).unwrap_or_default();
        self.store.release_events(name, &self.claimant, &ids(rest), &error, retry_at).await?;
        Err(DrainError::Publish { destination: name, error })
    }

    /// Keeps the outbox bounded and reports its backlog, every [`PRUNE_EVERY`].
    async fn prune(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let sent_before = chrono::Utc::now() - chrono::Duration::from_std(KEEP_SENT).unwrap_or_default();
            match self.store.prune_outbox(self.max_pending, sent_before).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(
                        dropped = n,
                        max_pending = self.max_pending,
                        "the outbox was over [announce] max_pending: dropped the oldest unsent announcements"
                    );
                    if let Some(o) = self.observer.get() {
                        o.dropped(n);
                    }
                }
                Err(e) => tracing::warn!("cannot prune the outbox: {e}"),
            }
            if let (Some(o), Ok(backlog)) = (self.observer.get(), self.store.outbox_backlog().await) {
                o.backlog(&self.with_idle(backlog));
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(PRUNE_EVERY) => {}
            }
        }
    }
}

impl Drainer {
    /// `backlog` plus an empty entry for each of this drainer's destinations
    /// with nothing waiting, so a gauge goes back to 0.
    fn with_idle(&self, mut backlog: Vec<Backlog>) -> Vec<Backlog> {
        for name in self.destinations() {
            if !backlog.iter().any(|b| b.destination == name) {
                backlog.push(Backlog { destination: name.into(), pending: 0, oldest: None, last_error: None });
            }
        }
        backlog
    }
}

fn ids(events: &[PendingEvent]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}
