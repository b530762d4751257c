//! `[[timer]]`s in the worker: every worker runs the timer loop, and the run
//! store decides which one fires each slot (relflow_store::timers has the
//! guarantees), so a slot is one message however many workers and hosts run.
//!
//! A slot's message has topic `relflow.timer.<name>` and body `name`,
//! `scheduled_at`, `fired_at` and the timer's static `body`. It enters the
//! work queue through the one intake door (the Sink: dedupe, counts) and is
//! matched by ordinary rules. Its id is derived from (timer, slot), so a
//! slot queued twice (a claimant died between queueing it and marking it
//! sent) is deduped, and its rules run once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use relflow_core::config::timer::rfc3339;
use relflow_core::config::Timer;
use relflow_core::{Config, Message};
use relflow_ingest::{Outcome, Sink};
use relflow_store::{RunStore, TimerAdvance, TimerSlot};
use serde_json::Map;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// The source of every timer message.
pub const TIMER_SOURCE: &str = "relflow.timer";
/// The longest the loop sleeps: how soon a claim whose claimant died is
/// queued by another worker, at worst, after its lease.
const TIMER_POLL: Duration = Duration::from_secs(5);
/// How long a claimed slot is held before another worker may queue it.
const SLOT_LEASE: Duration = Duration::from_secs(60);

/// Why an operator's `relflow timers fire` did nothing.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    /// The config has no such timer.
    #[error("no timer named {0:?} in the config")]
    Unknown(String),
    /// The run store did not take the claim: nothing was fired.
    #[error("the run store cannot record the fire: {0}")]
    Store(#[from] relflow_store::StoreError),
    /// Claimed but not queued: a worker queues it once the claim runs out.
    #[error("the fire is recorded but could not be queued (a worker queues it within {lease:?}): {reason}")]
    NotQueued {
        /// The claim's lease.
        lease: Duration,
        /// What the intake said.
        reason: String,
    },
}

/// Fires the configured timers' slots through `sink`.
pub struct Timers {
    config: Arc<Config>,
    store: Arc<dyn RunStore>,
    sink: Sink,
    /// Recorded as the claimant of each slot (`host:pid`, or the CLI user).
    claimant: String,
}

/// The message id of a timer's slot.
pub fn message_id(slot: &TimerSlot) -> String {
    format!("relflow-timer-{}-{}", slot.timer, slot.slot)
}

/// The message of a timer's slot.
pub fn message(timer: &Timer, slot: &TimerSlot) -> Message {
    Message {
        id: message_id(slot),
        topic: timer.topic(),
        body: timer.message_body(slot.scheduled_at, slot.fired_at),
        headers: Map::new(),
        sent_at: Some(slot.fired_at),
        source: TIMER_SOURCE.into(),
    }
}

/// Now, to the millisecond the store keeps (a slot queued again by another
/// worker must be the same message).
fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_default()
}

impl Timers {
    /// Timers of `config`, claimed in `store` as `claimant`, queued through `sink`.
    pub fn new(config: Arc<Config>, store: Arc<dyn RunStore>, sink: Sink, claimant: String) -> Timers {
        Timers { config, store, sink, claimant }
    }

    /// Fires due slots until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        if self.config.timers.is_empty() {
            return;
        }
        loop {
            for timer in &self.config.timers {
                self.tick(timer).await;
            }
            self.requeue_stale().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.until_next()) => {}
            }
        }
    }

    /// Until the next slot of any timer, at most [`TIMER_POLL`].
    fn until_next(&self) -> Duration {
        let now = Utc::now();
        let next = self.config.timers.iter().filter_map(|t| t.slots.next_after(now)).min();
        let wait = next.and_then(|n| (n - now).to_std().ok()).unwrap_or(TIMER_POLL);
        wait.min(TIMER_POLL)
    }

    /// Claims and queues what `timer` has due now, if this worker wins it.
    async fn tick(&self, timer: &Timer) {
        let last = match self.store.timer_last_slot(&timer.name).await {
            Ok(last) => last,
            Err(e) => return warn!(timer = %timer.name, "cannot read the timer's last slot: {e}"),
        };
        let now = now_ms();
        let (to, fire, skipped) = match last {
            // Never seen: it starts from now, with nothing to catch up.
            None => (now, Vec::new(), 0),
            Some(last) => {
                let plan = timer.slots.plan(last, now, timer.catch_up, timer.max_catch_up);
                let Some(to) = plan.last else { return };
                (to, plan.fire, plan.skipped)
            }
        };
        let fire = fire.into_iter().map(|at| scheduled(timer, at, now)).collect();
        let advance = TimerAdvance {
            timer: timer.name.clone(),
            from: last,
            to,
            fire,
            claimant: self.claimant.clone(),
            lease: SLOT_LEASE,
        };
        let claimed = match self.store.advance_timer(&advance).await {
            Ok(Some(claimed)) => claimed,
            // Another worker moved it first: the slots are its to fire.
            Ok(None) => return,
            Err(e) => return warn!(timer = %timer.name, "cannot claim the timer's due slots: {e}"),
        };
        if skipped > 0 {
            info!(timer = %timer.name, skipped, catch_up = timer.catch_up.as_str(), "missed slot(s) after downtime not fired");
        }
        for slot in &claimed {
            self.queue(timer, slot).await;
        }
    }

    /// Queues slots whose claimant died before queueing them.
    async fn requeue_stale(&self) {
        loop {
            let slot = match self.store.claim_stale_slot(&self.claimant, SLOT_LEASE).await {
                Ok(Some(slot)) => slot,
                Ok(None) => return,
                Err(e) => return warn!("cannot look for unqueued timer slots: {e}"),
            };
            match self.config.timers.iter().find(|t| t.name == slot.timer) {
                Some(timer) => self.queue(timer, &slot).await,
                None => {
                    warn!(timer = %slot.timer, slot = %slot.slot, "timer no longer configured; its slot is dropped");
                    self.sent(&slot).await;
                }
            }
        }
    }

    /// Puts the slot's message through the intake; `Err`: it is not queued,
    /// and its claim runs out for another worker to try.
    async fn submit(&self, timer: &Timer, slot: &TimerSlot) -> Result<(), String> {
        let msg = message(timer, slot);
        match self.sink.submit(msg).await {
            Ok(Outcome::Queued | Outcome::Duplicate) => {
                info!(timer = %timer.name, slot = %slot.slot, manual = slot.manual, "timer fired");
                Ok(())
            }
            Ok(Outcome::Rejected { check, reason }) => {
                // It can never be accepted (a static body over max_message_bytes): trying again cannot help.
                error!(timer = %timer.name, slot = %slot.slot, check, "the intake refused the timer's message: {reason}");
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn queue(&self, timer: &Timer, slot: &TimerSlot) {
        match self.submit(timer, slot).await {
            Ok(()) => self.sent(slot).await,
            Err(e) => warn!(timer = %timer.name, slot = %slot.slot, "cannot queue the timer's message (queued again \
                            after its claim runs out): {e}"),
        }
    }

    async fn sent(&self, slot: &TimerSlot) {
        if let Err(e) = self.store.slot_sent(&slot.timer, &slot.slot).await {
            warn!(timer = %slot.timer, slot = %slot.slot, "cannot mark the slot queued (it may be queued again; it \
                  runs once): {e}");
        }
    }

    /// An operator's fire: a slot of its own (`fire-<uuid>`), now.
    pub async fn fire(&self, name: &str) -> Result<TimerSlot, FireError> {
        let timer = self.config.timers.iter().find(|t| t.name == name).ok_or(FireError::Unknown(name.into()))?;
        let now = now_ms();
        let slot = TimerSlot {
            timer: timer.name.clone(),
            slot: format!("fire-{}", uuid::Uuid::new_v4().simple()),
            scheduled_at: now,
            fired_at: now,
            manual: true,
        };
        self.store.claim_fire(&slot, &self.claimant, SLOT_LEASE).await?;
        self.submit(timer, &slot).await.map_err(|reason| FireError::NotQueued { lease: SLOT_LEASE, reason })?;
        self.sent(&slot).await;
        Ok(slot)
    }
}

/// The slot of `timer` scheduled at `at`, fired `now`.
fn scheduled(timer: &Timer, at: DateTime<Utc>, now: DateTime<Utc>) -> TimerSlot {
    TimerSlot { timer: timer.name.clone(), slot: rfc3339(at), scheduled_at: at, fired_at: now, manual: false }
}

/// A timer as operators see it (`relflow timers list`, `relflow status`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimerView {
    /// `name`, as configured.
    pub name: String,
    /// `relflow.timer.<name>`.
    pub topic: String,
    /// The cron schedule, as written.
    pub schedule: String,
    /// Its IANA time zone.
    pub timezone: String,
    /// What a worker does with slots missed while none ran.
    pub catch_up: relflow_core::schedule::CatchUp,
    /// The next scheduled slot.
    pub next_fire: Option<DateTime<Utc>>,
    /// The slot fired last (scheduled, or an operator's), if any.
    pub last_fire: Option<TimerSlot>,
    /// The newest scheduled slot handled; `None`: no worker ran it yet.
    pub last_slot: Option<DateTime<Utc>>,
    /// Slots due since `last_slot` that no worker handled yet (all workers
    /// stopped): a worker starting now treats them as `catch_up` says.
    pub missed: usize,
}

/// The configured timers with what the store knows of each, at `now`.
pub fn timer_views(config: &Config, states: &[relflow_store::TimerState], now: DateTime<Utc>) -> Vec<TimerView> {
    config
        .timers
        .iter()
        .map(|t| {
            let state = states.iter().find(|s| s.name == t.name);
            let last_slot = state.and_then(|s| s.last_slot);
            TimerView {
                name: t.name.clone(),
                topic: t.topic(),
                schedule: t.schedule.clone(),
                timezone: t.timezone.clone(),
                catch_up: t.catch_up,
                next_fire: t.slots.next_after(now),
                last_fire: state.and_then(|s| s.last_fire.clone()),
                missed: last_slot.map_or(0, |l| t.slots.due(l, now, 0).total),
                last_slot,
            }
        })
        .collect()
}

impl std::fmt::Display for TimerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = |t: Option<DateTime<Utc>>| t.map_or_else(|| "-".to_owned(), rfc3339);
        writeln!(
            f,
            "{}  {:?} {}  catch_up {}  -> {}",
            self.name,
            self.schedule,
            self.timezone,
            self.catch_up.as_str(),
            self.topic
        )?;
        let last = match &self.last_fire {
            None => "never".to_owned(),
            Some(s) if s.manual => format!("{} (operator fire)", rfc3339(s.fired_at)),
            Some(s) => format!("{} (slot {})", rfc3339(s.fired_at), rfc3339(s.scheduled_at)),
        };
        write!(f, "  next {}  last {last}  missed {}", when(self.next_fire), self.missed)
    }
}
