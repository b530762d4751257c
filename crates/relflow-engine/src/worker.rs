//! The worker: claim a message, run every rule it matches, record each run,
//! then settle the message with the queue ([`crate::settle`] decides how).
//!
//! Runs are recorded before the message is settled, and a rule that already
//! succeeded for a message is skipped, so a redelivery never repeats work
//! that finished: at-least-once delivery, exactly-once successful runs.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use relflow_ansible::Runner;
use relflow_core::{match_rules, queue_payload_limit, Config, Message};
use relflow_queue::{Delivery, WorkQueue};
use relflow_store::{RequestKind, RunStore};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::announce::{Announce, WorkerError};
use crate::fleet::HeldCount;
use crate::locks::KeyedLocks;
use crate::logs::RunLogs;
use crate::metrics::Metrics;
use crate::noops::NoopCounter;
use crate::settle::{settle, Handled, RuleVerdict, Settle};
use crate::tally::{Counters, Tally};
use crate::timers::Timers;
use crate::Backends;

/// How long one `claim` waits before the loop checks for shutdown/drain.
const CLAIM_WAIT: Duration = Duration::from_secs(1);

/// Takes messages from the queue and runs their playbooks, `concurrency`
/// runs at a time. Share it as `Arc<Worker>` and call [`Worker::run`].
pub struct Worker {
    pub(crate) config: Arc<Config>,
    pub(crate) queue: Arc<dyn WorkQueue>,
    pub(crate) store: Arc<dyn RunStore>,
    /// Counters for `/metrics` (`relflow serve`); private and unread otherwise.
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) runner: Arc<Runner>,
    pub(crate) logs: RunLogs,
    /// No-ops are counted in memory and written once a second (noops.rs).
    noops: Arc<NoopCounter>,
    /// Bounds playbook runs at once; shared by all messages in flight.
    pub(crate) run_slots: Arc<Semaphore>,
    pub(crate) concurrency: usize,
    /// Deliveries held at once (`[worker] prefetch`); only `run_slots`
    /// waits for a playbook, so no-ops keep flowing while every slot runs.
    pub(crate) prefetch: usize,
    /// Fired when the worker stops taking work: deliveries still waiting for
    /// a run slot are released instead of starting a playbook.
    pub(crate) stopping: CancellationToken,
    /// Rules in one concurrency group run one at a time.
    pub(crate) groups: KeyedLocks,
    /// Copies of one message are handled one at a time, so the second sees
    /// the first's recorded success instead of racing it.
    messages: KeyedLocks,
    /// `host:pid`, recorded with every run.
    pub(crate) id: String,
    /// `[announce]`: run events and the drainer that sends them.
    pub(crate) announce: Option<Announce>,
    /// Wakes the batch closer when this worker filled a batch (stateful.rs).
    pub(crate) batches_due: tokio::sync::Notify,
    /// How the messages it handled were settled.
    settled: Counters,
    /// Why it stopped by itself, if it did (the queue or the store became
    /// unusable).
    fatal: std::sync::OnceLock<String>,
    /// Fired with `fatal`: the claim loop stops.
    halted: CancellationToken,
    /// Finished runs' outcomes until the store has them (kept.rs).
    pub(crate) kept: crate::kept::Kept,
    /// `[[timer]]`s: `None` when there are none.
    timers: Option<Arc<Timers>>,
    /// Deliveries held now, for the heartbeat (fleet.rs).
    pub(crate) held: HeldCount,
    pub(crate) started_at: chrono::DateTime<chrono::Utc>,
    /// The sources with `validate = "reject"` and their schemas; `None`
    /// when there are none.
    schemas: Option<relflow_schemas::Gate>,
}

impl Worker {
    /// A worker over `backends` running up to `concurrency` playbooks at once.
    pub fn new(config: Arc<Config>, backends: Backends, concurrency: usize) -> Result<Worker, WorkerError> {
        let logs = RunLogs::new(&config.data_dir);
        if let Err(e) = logs.create_dir() {
            warn!("cannot create the live log directory (running logs will not stream live): {e}");
        }
        let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        let id = format!("{host}:{}", std::process::id());
        let prefetch = config.worker.prefetch_for(concurrency);
        let timers = Self::open_timers(&config, &backends, &id)?;
        let config_dir = config.data_dir.clone();
        let schemas = Self::open_schemas(&config)?;
        Ok(Worker {
            timers,
            schemas,
            announce: Announce::open(&config, &backends, &id)?,
            runner: Arc::new(Runner::new(crate::options::runner(&config))?),
            noops: Arc::new(NoopCounter::new(Arc::clone(&backends.store))),
            logs,
            config,
            queue: backends.queue,
            store: backends.store,
            run_slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            prefetch,
            stopping: CancellationToken::new(),
            groups: KeyedLocks::default(),
            messages: KeyedLocks::default(),
            metrics: Arc::new(Metrics::new()),
            id,
            batches_due: tokio::sync::Notify::new(),
            settled: Counters::default(),
            fatal: std::sync::OnceLock::new(),
            held: HeldCount::default(),
            started_at: chrono::Utc::now(),
            halted: CancellationToken::new(),
            kept: crate::kept::Kept::new(&config_dir),
        })
    }

    /// The timer loop, through the one intake door, when timers are configured.
    fn open_timers(config: &Arc<Config>, backends: &Backends, id: &str) -> Result<Option<Arc<Timers>>, WorkerError> {
        if config.timers.is_empty() {
            return Ok(None);
        }
        let sink = relflow_ingest::Sink::open(&crate::options::sink(config), Arc::clone(&backends.queue))
            .map_err(|e| WorkerError::Timers(format!("{e:#}")))?;
        let timers = Timers::new(Arc::clone(config), Arc::clone(&backends.store), sink, id.to_owned());
        Ok(Some(Arc::new(timers)))
    }

    /// The schema gate of the sources that reject (`warn` is the intake's
    /// business alone).
    fn open_schemas(config: &Config) -> Result<Option<relflow_schemas::Gate>, WorkerError> {
        let mut modes = relflow_schemas::Gate::modes(&config.sources);
        modes.retain(|_, mode| *mode == relflow_core::config::Validate::Reject);
        relflow_schemas::Gate::open(config.schemas.dir(), modes).map_err(|e| WorkerError::Schemas(e.to_string()))
    }

    /// Shares `metrics` (the one `/metrics` renders) instead of a private set.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Worker {
        metrics.set_slots(self.concurrency);
        self.metrics = metrics;
        self
    }

    /// Why the worker stopped by itself (the process should exit non-zero),
    /// or `None` if it stopped because it was asked to or drained.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.get().map(String::as_str)
    }

    /// Stops the worker for good (the process exits non-zero): retrying
    /// cannot help, e.g. its SQLite files cannot be written any more.
    pub(crate) fn halt(&self, why: String) {
        tracing::error!("stopping: {why}");
        let _ = self.fatal.set(why);
        self.halted.cancel();
    }

    /// How the messages this worker handled so far were settled.
    pub fn tally(&self) -> Tally {
        self.settled.tally()
    }

    /// Runs until `shutdown` fires, or, with `drain`, until the queue has no
    /// work left. On shutdown, running playbooks get `drain_timeout` to
    /// finish; then they are stopped and their messages released.
    pub async fn run(self: Arc<Self>, drain: bool, shutdown: CancellationToken) {
        let kill = CancellationToken::new();
        let in_flight = Arc::new(Semaphore::new(self.prefetch));
        let mut tasks = JoinSet::new();
        // Before any work: a run a stopped worker finished must be on record
        // before its redelivered message is looked at.
        if let Err(e) = self.kept.record_all(&*self.store).await {
            self.halt(format!("cannot record the runs kept by a stopped worker: {e}"));
            return;
        }
        info!(worker = %self.id, concurrency = self.concurrency, prefetch = self.prefetch, rules = self.config.rules.len(), "worker started");
        let stop_noops = CancellationToken::new();
        // Before the warm-up, which may take seconds: a slot due now fires now.
        let timers = self.timers.clone().map(|t| tokio::spawn(t.run(stop_noops.clone())));
        // Warm mode: pay for importing ansible now, not on the first message.
        self.runner.warm_up(&self.config.playbook_cwd()).await;
        let noops = tokio::spawn(Arc::clone(&self.noops).run(stop_noops.clone()));
        let drainer = self.announce.as_ref().map(|a| a.spawn(Arc::clone(&self.metrics), stop_noops.clone()));
        let closer = tokio::spawn(Arc::clone(&self).close_batches(stop_noops.clone()));
        let beats = tokio::spawn(Arc::clone(&self).keep_beating(stop_noops.clone()));
        let sweeper = tokio::spawn(Arc::clone(&self).expire_approvals(stop_noops.clone()));
        let pruner = tokio::spawn(crate::retention::keep_pruning(
            Arc::clone(&self.store),
            Arc::clone(&self.queue),
            self.config.retention,
            stop_noops.clone(),
        ));
        loop {
            while tasks.try_join_next().is_some() {}
            let slots = tokio::select! {
                s = free_slots(&in_flight) => s,
                _ = shutdown.cancelled() => break,
                _ = self.halted.cancelled() => break,
            };
            // Not raced against shutdown: a claim cut short may still have
            // leased what it took, which would then wait out its lease. It
            // returns within CLAIM_WAIT, and what it took goes back.
            let claimed = self.queue.claim_many(slots.len(), CLAIM_WAIT).await;
            if shutdown.is_cancelled() || self.halted.is_cancelled() {
                self.release_unstarted(claimed.unwrap_or_default()).await;
                break;
            }
            match claimed {
                Ok(deliveries) if !deliveries.is_empty() => {
                    for (delivery, permit) in deliveries.into_iter().zip(slots) {
                        let (me, kill, held) = (Arc::clone(&self), kill.clone(), self.held.hold());
                        tasks.spawn(async move {
                            me.handle(delivery, permit, kill).await;
                            drop(held);
                        });
                    }
                }
                Ok(_) if drain && tasks.is_empty() => {
                    if self.drained().await {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) if e.is_fatal() => {
                    self.halt(e.to_string());
                    break;
                }
                Err(e) => {
                    // The queue is down (broker restart, disk full...). Keep
                    // the worker alive and try again: nothing is lost, the
                    // messages are still on the queue.
                    warn!("cannot claim from the queue, retrying in 1s: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        self.stopping.cancel();
        self.stop_running(tasks, kill).await;
        stop_noops.cancel();
        let _ = noops.await;
        let _ = closer.await;
        if let Some(timers) = timers {
            let _ = timers.await;
        }
        let _ = sweeper.await;
        let _ = pruner.await;
        let _ = beats.await;
        if let Some(drainer) = drainer {
            let _ = drainer.await;
        }
        info!("worker stopped");
    }

    /// Hands back deliveries claimed as the worker began to stop.
    async fn release_unstarted(&self, deliveries: Vec<Delivery>) {
        for d in deliveries {
            if let Err(e) = self.queue.release(&d).await {
                warn!("cannot hand a delivery back (it comes back when its lease runs out): {e}");
            }
        }
    }

    /// `--drain`: whether nothing is left to do (ready, delayed or in flight
    /// on any worker).
    async fn drained(&self) -> bool {
        match self.queue.depth().await {
            Ok(depth) if depth.pending() == 0 && self.chain_idle().await && self.batches_idle().await => {
                info!("queue drained, exiting");
                true
            }
            Ok(depth) => {
                info!(
                    ready = depth.ready,
                    delayed = depth.delayed,
                    in_flight = depth.in_flight,
                    "waiting for queued work"
                );
                false
            }
            Err(e) => {
                warn!("cannot read queue depth: {e}");
                false
            }
        }
    }

    /// Whether no coalesce window or join is open (`--drain` waits for them).
    async fn batches_idle(&self) -> bool {
        match self.store.open_batches().await {
            Ok(open) => open.is_empty(),
            Err(e) => {
                warn!("cannot read the open batches: {e}");
                false
            }
        }
    }

    /// Gives running playbooks `drain_timeout`, then stops them (their
    /// messages are released for another worker).
    async fn stop_running(&self, mut tasks: JoinSet<()>, kill: CancellationToken) {
        if tasks.is_empty() {
            return;
        }
        let timeout = self.config.worker.drain_timeout;
        info!(running = tasks.len(), ?timeout, "draining: waiting for running playbooks");
        let drained = tokio::time::timeout(timeout, async { while tasks.join_next().await.is_some() {} });
        if drained.await.is_err() {
            warn!("drain timeout passed: stopping running playbooks; their messages go back on the queue");
            kill.cancel();
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Everything for one delivery, ending with exactly one of ack, retry,
    /// dead_letter or release. Never panics on bad input, never returns an
    /// error: a queue error here is logged and the delivery comes back.
    ///
    /// `slot` is this delivery's place among the worker's `prefetch`
    /// deliveries in flight. It is given back once the work is decided,
    /// before the settle call: the next claim then goes to the queue while
    /// this settle is still in the air, and the embedded queue commits both
    /// in one transaction (one fsync instead of two per message). The settle
    /// itself still happens only after the work; nothing is acked early.
    async fn handle(&self, d: Delivery, slot: OwnedSemaphorePermit, kill: CancellationToken) {
        let decoded = Message::from_queue_payload(&d.payload, queue_payload_limit(self.config.max_message_bytes));
        let (decision, source, _one_at_a_time, keep_alive) = match decoded {
            Err(e) => {
                self.metrics.rejected("unknown", "undecodable");
                (settle(&Handled::Undecodable(e.to_string()), &self.config.worker), None, None, None)
            }
            Ok(_) if d.deliveries > self.config.worker.max_deliveries => {
                (settle(&Handled::TooManyDeliveries(d.deliveries), &self.config.worker), None, None, None)
            }
            Ok(msg) => {
                let keep_alive = self.keep_alive(&d);
                // Held until settled, so a second copy sees this one's outcome.
                let one_at_a_time = self.messages.lock(&msg.id).await;
                let decision = self.process(&d, &msg, kill).await;
                (decision, Some(msg.source), Some(one_at_a_time), keep_alive)
            }
        };
        drop(slot);
        self.settled.count(&decision);
        if let Settle::DeadLetter(_) = decision {
            self.metrics.dead_lettered(source.as_deref().unwrap_or("unknown"));
        }
        let settled = match decision {
            Settle::Ack => self.queue.ack(&d).await,
            Settle::Retry { delay, reason } => self.queue.retry(&d, delay, &reason).await,
            Settle::DeadLetter(reason) => self.queue.dead_letter(&d, &reason).await,
            Settle::Release => self.queue.release(&d).await,
        };
        if let Some(keep_alive) = keep_alive {
            keep_alive.cancel();
        }
        if let Err(e) = settled {
            warn!(tag = d.tag, "could not settle the message with the queue (it will be redelivered): {e}");
        }
    }

    /// Renews the lease as often as the queue asks until cancelled; `None`
    /// when the queue needs no renewals.
    fn keep_alive(&self, d: &Delivery) -> Option<CancellationToken> {
        let every = self.queue.lease_renewal()?;
        let stop = CancellationToken::new();
        let (queue, d, stopped) = (Arc::clone(&self.queue), d.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = queue.keep_alive(&d).await {
                    warn!("cannot renew the lease on a running message: {e}");
                }
            }
        });
        Some(stop)
    }

    /// Runs the rules `msg` matches and decides how to settle it.
    async fn process(&self, d: &Delivery, msg: &Message, kill: CancellationToken) -> Settle {
        // Before any rule sees it: a rule must never run on a message its
        // source's schema refuses.
        if let Some(verdict) = self.schemas.as_ref().and_then(|g| g.check(msg)) {
            self.metrics.rejected(&msg.source, "schema");
            return self.conclude(d, msg, Handled::SchemaInvalid(verdict.invalid.to_string())).await;
        }
        if Self::is_batch(msg) {
            return self.process_batch(d, msg, kill).await;
        }
        self.note_redelivery(d, msg).await;
        let (msg, rerun) = self.take_rerun(msg).await;
        let msg = &msg;
        if let Some((req, _)) = rerun.as_ref().filter(|(req, _)| req.kind == RequestKind::Expire) {
            let expires = self.config.rules.iter().find(|r| r.name == req.rule).and_then(|r| r.approval.as_ref());
            let why = crate::approval::expired_reason(&req.rule, expires.map(|a| a.expires));
            return self.conclude(d, msg, Handled::ApprovalExpired(why)).await;
        }
        let matches = match &rerun {
            // An operator's re-run: that rule alone, whatever its topic and condition say now.
            Some((req, _)) => match self.config.rules.iter().find(|r| r.name == req.rule) {
                Some(rule) => relflow_core::Matches { rules: vec![rule], errors: Vec::new() },
                None => {
                    return Settle::DeadLetter(format!("re-run of rule {:?}: no such rule in the config", req.rule))
                }
            },
            None => match_rules(&self.config.rules, msg),
        };
        for (rule, err) in &matches.errors {
            warn!(rule = %rule.name, msg_id = %msg.id, "condition could not be evaluated, treating as no match: {err}");
        }
        if matches.rules.is_empty() {
            self.metrics.noop(&msg.source);
            info!(msg_id = %msg.id, topic = %msg.topic, "no rule matched; acked as a no-op");
            self.noops.add();
            return settle(&Handled::NoMatch, &self.config.worker);
        }
        if let Some(why) = self.too_deep(msg) {
            warn!(msg_id = %msg.id, "dead-lettering: {why}");
            return settle(&Handled::ChainTooDeep(why), &self.config.worker);
        }
        self.metrics.matched(&msg.source);
        // Several rules of one message run side by side (each still takes a run slot).
        let runs = matches.rules.iter().map(|rule| async {
            // An operator's re-run runs the rule itself, batch or not.
            if crate::stateful::is_stateful(rule) && rerun.is_none() {
                self.buffer(rule, msg).await
            } else {
                self.run_rule(rule, msg, None, d.attempt, kill.clone(), rerun.as_ref()).await
            }
        });
        let outcomes = join_all(runs).await;
        let rules = matches
            .rules
            .iter()
            .zip(outcomes)
            .map(|(rule, outcome)| RuleVerdict { rule: &rule.name, retries: rule.retries, outcome })
            .collect();
        self.conclude(d, msg, Handled::Ran { attempt: d.attempt, rules }).await
    }

    /// How to settle `msg` after its rules ran, logged (and announced when
    /// it is dead-lettered).
    pub(crate) async fn conclude(&self, d: &Delivery, msg: &Message, handled: Handled<'_>) -> Settle {
        let decision = settle(&handled, &self.config.worker);
        self.note_settle(d, msg, &decision).await;
        match &decision {
            Settle::Retry { delay, reason } => {
                info!(msg_id = %msg.id, ?delay, "retrying later: {reason}");
                self.metrics.retried(&failed_rules(&handled));
            }
            Settle::DeadLetter(reason) => {
                warn!(msg_id = %msg.id, "dead-lettering: {reason}");
                self.announce_dead_letter(msg, &handled, reason).await;
            }
            Settle::Ack | Settle::Release => {}
        }
        decision
    }
}

/// The rules whose runs failed (and may be retried), for the retries metric.
fn failed_rules<'a>(handled: &Handled<'a>) -> Vec<&'a str> {
    match handled {
        Handled::Ran { rules, .. } => rules
            .iter()
            .filter(|r| matches!(r.outcome, crate::settle::RuleOutcome::Failed(_)))
            .map(|r| r.rule)
            .collect(),
        _ => Vec::new(),
    }
}

/// Waits for a free run slot, then takes every other one free now: the
/// claim fills them all in one call (one transaction on the embedded queue).
async fn free_slots(in_flight: &Arc<Semaphore>) -> Vec<OwnedSemaphorePermit> {
    let first = Arc::clone(in_flight).acquire_owned().await.expect("the slot semaphore is never closed");
    let mut slots = vec![first];
    while let Ok(more) = Arc::clone(in_flight).try_acquire_owned() {
        slots.push(more);
    }
    slots
}
