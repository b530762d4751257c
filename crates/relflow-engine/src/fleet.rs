//! The worker's heartbeat, and the fleet as operators see it.
//!
//! Every [`BEAT`] the worker writes what it holds into the run store
//! (relflow_store::fleet); `relflow serve`, `relflow status` and
//! `relflow workers` on any host read the rows back, with the runs each
//! worker is running now. A worker whose beat is older than [`LOST_AFTER`]
//! died without saying so: its runs become `abandoned` when the queue gives
//! their messages to another worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use relflow_core::Config;
use relflow_queue::{QueueDepth, QueueError, WorkQueue};
use relflow_store::{RunFilter, RunStatus, RunStore, StoreError, WorkerBeat, WorkerSeen};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::worker::Worker;

/// How often a worker beats.
pub const BEAT: Duration = Duration::from_secs(5);

/// A worker that has not beaten for this long (three beats missed) is lost.
pub const LOST_AFTER: Duration = Duration::from_secs(20);

/// Running runs listed per fleet view; more than this is a fleet too big to
/// list each run of on one page anyway.
const RUNS_LISTED: usize = 500;

/// Counts the deliveries a worker holds: one [`Held`] per delivery, from
/// its claim until it is settled.
#[derive(Debug, Default)]
pub(crate) struct HeldCount(Arc<AtomicUsize>);

impl HeldCount {
    pub(crate) fn hold(&self) -> Held {
        self.0.fetch_add(1, Ordering::Relaxed);
        Held(Arc::clone(&self.0))
    }

    fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// One delivery held; dropping it lets go of the count.
pub(crate) struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Worker {
    fn beat(&self) -> WorkerBeat {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        // The id is `host:pid` (worker.rs).
        let host = self.id.rsplit_once(':').map_or(self.id.as_str(), |(host, _)| host);
        WorkerBeat {
            id: self.id.clone(),
            host: host.to_owned(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            concurrency: count(self.concurrency),
            prefetch: count(self.prefetch),
            held: count(self.held.now()),
            running: count(self.concurrency.saturating_sub(self.run_slots.available_permits())),
            started_at: self.started_at,
        }
    }

    /// Beats until `stop`, then records the clean stop. A failed beat is
    /// only logged: the store being down must not stop the work.
    pub(crate) async fn keep_beating(self: Arc<Self>, stop: CancellationToken) {
        let mut failing = false;
        loop {
            match self.store.beat(&self.beat()).await {
                Ok(()) if failing => {
                    failing = false;
                    debug!("heartbeat written again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    warn!("cannot write the worker's heartbeat (it shows as lost until it can): {e}");
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(BEAT) => {}
                _ = stop.cancelled() => break,
            }
        }
        if let Err(e) = self.store.leave(&self.id).await {
            warn!("cannot record the worker's clean stop: {e}");
        }
    }
}

/// A worker's state as readers judge it from its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Beating.
    Alive,
    /// Stopped cleanly.
    Stopped,
    /// Stopped beating without saying so (killed, host down, store unreachable).
    Lost,
}

impl WorkerState {
    /// As in the API and the `relflow_workers` metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Alive => "alive",
            WorkerState::Stopped => "stopped",
            WorkerState::Lost => "lost",
        }
    }
}

/// A run a worker is running now.
#[derive(Debug, Clone, Serialize)]
pub struct RunningRun {
    /// The run's id.
    pub id: String,
    /// Its rule.
    pub rule: String,
    /// What its message is about.
    pub subject: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// One worker of the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerView {
    /// Its row as last written.
    #[serde(flatten)]
    pub seen: WorkerSeen,
    /// Alive, stopped or lost.
    pub state: WorkerState,
    /// Seconds since its last beat.
    pub beat_age_secs: i64,
    /// What it runs now, newest first.
    pub runs: Vec<RunningRun>,
}

/// Every worker seen in the last day, and the fleet's totals.
#[derive(Debug, Clone, Serialize)]
pub struct FleetView {
    /// Alive first, then by latest beat.
    pub workers: Vec<WorkerView>,
    /// Workers alive now.
    pub alive: usize,
    /// Deliveries the live workers hold: the fleet's in-flight count.
    pub in_flight: u64,
    /// Playbooks the live workers run.
    pub running: u64,
}

fn state(w: &WorkerSeen, now: DateTime<Utc>) -> WorkerState {
    let lost = chrono::Duration::from_std(LOST_AFTER).unwrap_or(chrono::Duration::MAX);
    match w.stopped_at {
        Some(_) => WorkerState::Stopped,
        None if now - w.seen_at > lost => WorkerState::Lost,
        None => WorkerState::Alive,
    }
}

/// The fleet from the run store: its heartbeats and its running runs.
pub async fn fleet(store: &dyn RunStore) -> Result<FleetView, StoreError> {
    let now = Utc::now();
    let running = RunFilter { status: Some(RunStatus::Running), limit: RUNS_LISTED, ..RunFilter::default() };
    let runs = store.list(&running).await?;
    let mut workers: Vec<WorkerView> = store
        .workers()
        .await?
        .into_iter()
        .map(|seen| {
            let mine = runs.iter().filter(|r| r.worker == seen.beat.id);
            let runs = mine
                .map(|r| RunningRun {
                    id: r.id.clone(),
                    rule: r.rule.clone(),
                    subject: r.subject.clone(),
                    started_at: r.started_at,
                })
                .collect();
            WorkerView { state: state(&seen, now), beat_age_secs: (now - seen.seen_at).num_seconds(), seen, runs }
        })
        .collect();
    workers.sort_by_key(|w| w.state != WorkerState::Alive);
    let live = || workers.iter().filter(|w| w.state == WorkerState::Alive);
    let in_flight = live().map(|w| u64::from(w.seen.beat.held)).sum();
    let running = live().map(|w| u64::from(w.seen.beat.running)).sum();
    Ok(FleetView { alive: live().count(), in_flight, running, workers })
}

impl FleetView {
    /// Puts the fleet's in-flight count into `depth`, read from `config`'s
    /// queue. RabbitMQ tells a client only what that client holds, so there
    /// the count is the live workers' sum (or this process's own count, if
    /// larger: it is fresher than its last beat). The embedded queue counts
    /// its claimed rows itself, which is exact.
    pub fn count_in_flight(&self, config: &Config, depth: &mut QueueDepth) {
        if config.queue.is_rabbitmq() {
            depth.in_flight = depth.in_flight.max(self.in_flight);
        }
    }

    /// How many workers are in `state`.
    pub fn count(&self, state: WorkerState) -> usize {
        self.workers.iter().filter(|w| w.state == state).count()
    }
}

/// The queue's depth with the fleet's in-flight count
/// ([`FleetView::count_in_flight`]). If the run store cannot be read, the
/// queue's own count stands.
pub async fn queue_depth(
    config: &Config,
    queue: &dyn WorkQueue,
    store: &dyn RunStore,
) -> Result<QueueDepth, QueueError> {
    let mut depth = queue.depth().await?;
    if config.queue.is_rabbitmq() {
        match fleet(store).await {
            Ok(f) => f.count_in_flight(config, &mut depth),
            Err(e) => debug!("in-flight count from this process only: cannot read the fleet: {e}"),
        }
    }
    Ok(depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(beat_ago: i64, stopped: bool) -> WorkerSeen {
        let now = Utc::now();
        WorkerSeen {
            beat: WorkerBeat {
                id: "h:1".into(),
                host: "h".into(),
                pid: 1,
                version: "0".into(),
                concurrency: 2,
                prefetch: 2,
                held: 1,
                running: 1,
                started_at: now,
            },
            seen_at: now - chrono::Duration::seconds(beat_ago),
            stopped_at: stopped.then_some(now),
        }
    }

    #[test]
    fn a_worker_silent_past_lost_after_is_lost_and_a_clean_stop_is_stopped() {
        let now = Utc::now();
        assert_eq!(state(&seen(4, false), now), WorkerState::Alive);
        assert_eq!(state(&seen(LOST_AFTER.as_secs() as i64 - 1, false), now), WorkerState::Alive);
        assert_eq!(state(&seen(LOST_AFTER.as_secs() as i64 + 1, false), now), WorkerState::Lost);
        assert_eq!(state(&seen(1, true), now), WorkerState::Stopped);
        assert_eq!(state(&seen(3600, true), now), WorkerState::Stopped, "stopped, not lost");
    }
}
