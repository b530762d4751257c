//! The worker: claim a message, run every rule it matches, record each run,
//! then settle the message with the queue.
//!
//! Settling follows DESIGN.md's ack semantics:
//!
//! | what happened                              | what the queue is told            |
//! |--------------------------------------------|-----------------------------------|
//! | every matching rule succeeded (or none matched) | `ack`                        |
//! | a rule failed and has retries left         | `retry` after exponential backoff |
//! | a rule failed with no retries left         | `dead_letter` with the reasons    |
//! | undecodable payload, missing playbook      | `dead_letter` at once             |
//! | worker shutting down mid-run               | `release` (redelivered, not a failure) |
//! | worker killed                              | nothing: the lease runs out, redelivered |
//!
//! Runs are recorded before the message is settled, and a rule that already
//! succeeded for a message is skipped, so a redelivery never repeats work
//! that finished: at-least-once delivery, exactly-once successful runs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures_util::future::join_all;
use relflow_ansible::{ExtraVars, Outcome, PlaybookRun, RunInfo, RunResult, Runner, RunnerConfig};
use relflow_core::config::PlaybookError;
use relflow_core::{match_rules, Config, Message, Rule};
use relflow_queue::{Delivery, WorkQueue};
use relflow_store::{LockGuard, NewRun, RunOutcome, RunStatus, RunStore, TaskCounts};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::locks::{KeyedGuard, KeyedLocks};
use crate::metrics::Metrics;
use crate::noops::NoopCounter;

/// How long one `claim` waits before the loop checks for shutdown/drain.
const CLAIM_WAIT: Duration = Duration::from_secs(1);

pub struct Worker {
    config: Arc<Config>,
    queue: Arc<dyn WorkQueue>,
    store: Arc<dyn RunStore>,
    /// Counters for `/metrics` (`relflow serve`); private and unread otherwise.
    metrics: Arc<Metrics>,
    runner: Arc<Runner>,
    /// No-ops are counted in memory and written once a second (noops.rs).
    noops: Arc<NoopCounter>,
    /// Bounds playbook runs at once; shared by all messages in flight.
    run_slots: Arc<Semaphore>,
    concurrency: usize,
    /// Rules in one concurrency group run one at a time.
    groups: KeyedLocks,
    /// Copies of one message are handled one at a time, so the second sees
    /// the first's recorded success instead of racing it.
    messages: KeyedLocks,
    id: String,
}

/// How a delivery is handed back to the queue (the table at the top).
enum Settle {
    Ack,
    Retry { delay: Duration, reason: String },
    DeadLetter(String),
    Release,
}

/// What happened to one rule for one delivery.
enum RuleResult {
    Succeeded,
    /// Ran before and succeeded; skipped.
    AlreadyDone,
    /// Failed; retrying may help.
    Failed(String),
    /// Cannot succeed by retrying (missing playbook, ...).
    Permanent(String),
    /// Stopped because the worker is shutting down.
    Interrupted,
}

impl Worker {
    pub fn new(
        config: Arc<Config>,
        queue: Arc<dyn WorkQueue>,
        store: Arc<dyn RunStore>,
        concurrency: usize,
    ) -> Result<Worker> {
        let mut runner = RunnerConfig::new(&config.ansible.playbook_cmd, config.data_dir.join("ansible"));
        runner.ansible_config = config.ansible.config.clone();
        runner.env_passthrough = config.ansible.env.clone();
        runner.kill_grace = config.ansible.kill_grace;
        if config.ansible.mode == relflow_core::config::AnsibleMode::Warm {
            runner.mode = relflow_ansible::RunnerMode::Warm;
        }
        let logs = config.data_dir.join("logs");
        if let Err(e) = std::fs::create_dir_all(&logs) {
            warn!("cannot create {} (running logs will not stream live): {e}", logs.display());
        }
        let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Worker {
            runner: Arc::new(Runner::new(runner)?),
            noops: Arc::new(NoopCounter::new(Arc::clone(&store))),
            config,
            queue,
            store,
            run_slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            groups: KeyedLocks::default(),
            messages: KeyedLocks::default(),
            metrics: Arc::new(Metrics::new()),
            id: format!("{host}:{}", std::process::id()),
        })
    }

    /// Runs until `shutdown` fires, or, with `drain`, until the queue has no
    /// work left. On shutdown, running playbooks get `drain_timeout` to
    /// finish; then they are stopped and their messages released.
    pub async fn run(self: Arc<Self>, drain: bool, shutdown: CancellationToken) -> Result<()> {
        let kill = CancellationToken::new();
        let in_flight = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        info!(worker = %self.id, concurrency = self.concurrency, rules = self.config.rules.len(), "worker started");
        // Warm mode: pay for importing ansible now, not on the first message.
        self.runner.warm_up(&self.config.playbooks_dir).await;
        let stop_noops = CancellationToken::new();
        let noops = tokio::spawn(Arc::clone(&self.noops).run(stop_noops.clone()));
        loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = in_flight.clone().acquire_owned() => p?,
                _ = shutdown.cancelled() => break,
            };
            let claimed = tokio::select! {
                c = self.queue.claim(CLAIM_WAIT) => c,
                _ = shutdown.cancelled() => break,
            };
            match claimed {
                Ok(Some(delivery)) => {
                    let (me, kill) = (Arc::clone(&self), kill.clone());
                    tasks.spawn(async move { me.handle(delivery, permit, kill).await });
                }
                Ok(None) if drain && tasks.is_empty() => match self.queue.depth().await {
                    Ok(depth) if depth.pending() == 0 => {
                        info!("queue drained, exiting");
                        break;
                    }
                    Ok(depth) => info!(
                        ready = depth.ready,
                        delayed = depth.delayed,
                        in_flight = depth.in_flight,
                        "waiting for queued work"
                    ),
                    Err(e) => warn!("cannot read queue depth: {e}"),
                },
                Ok(None) => {}
                Err(e) => {
                    // The queue is down (broker restart, disk full...). Keep
                    // the worker alive and try again: nothing is lost, the
                    // messages are still on the queue.
                    warn!("cannot claim from the queue, retrying in 1s: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        if !tasks.is_empty() {
            info!(running = tasks.len(), timeout = ?self.config.worker.drain_timeout, "draining: waiting for running playbooks");
            let drained = tokio::time::timeout(self.config.worker.drain_timeout, async {
                while tasks.join_next().await.is_some() {}
            });
            if drained.await.is_err() {
                warn!("drain timeout passed: stopping running playbooks; their messages go back on the queue");
                kill.cancel();
                while tasks.join_next().await.is_some() {}
            }
        }
        stop_noops.cancel();
        let _ = noops.await;
        info!("worker stopped");
        Ok(())
    }

    /// Everything for one delivery, ending with exactly one of ack, retry,
    /// dead_letter or release. Never panics on bad input, never returns an
    /// error: a queue error here is logged and the lease runs out, which
    /// redelivers the message.
    ///
    /// `slot` is this delivery's place among the worker's `concurrency`
    /// deliveries in flight. It is given back once the work is decided,
    /// before the settle call: the next claim then goes to the queue while
    /// this settle is still in the air, and the embedded queue commits both
    /// in one transaction (one fsync instead of two per message). The settle
    /// itself still happens only after the work; nothing is acked early.
    async fn handle(&self, d: Delivery, slot: OwnedSemaphorePermit, kill: CancellationToken) {
        let decoded = Message::from_queue_payload(&d.payload, self.config.max_message_bytes);
        let (decision, _one_at_a_time, keep_alive) = match decoded {
            Err(e) => {
                self.metrics.rejected("unknown", "undecodable");
                self.metrics.dead_lettered("unknown");
                (Settle::DeadLetter(format!("undecodable message: {e}")), None, None)
            }
            Ok(_) if d.deliveries > self.config.worker.max_deliveries => {
                let reason = format!(
                    "delivered {} times without finishing (over worker.max_deliveries); a worker probably \
                     crashed on it each time",
                    d.deliveries
                );
                self.metrics.dead_lettered("unknown");
                (Settle::DeadLetter(reason), None, None)
            }
            Ok(msg) => {
                let keep_alive = self.keep_alive(&d);
                // Held until settled, so a second copy sees this one's outcome.
                let one_at_a_time = self.messages.lock(&msg.id).await;
                (self.process(&d, &msg, kill).await, Some(one_at_a_time), Some(keep_alive))
            }
        };
        drop(slot);
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

    /// Renews the lease every third of the visibility timeout until cancelled.
    fn keep_alive(&self, d: &Delivery) -> CancellationToken {
        let stop = CancellationToken::new();
        let (queue, d, stop2) = (Arc::clone(&self.queue), d.clone(), stop.clone());
        let every = (self.config.worker.visibility_timeout / 3).max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop2.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = queue.keep_alive(&d).await {
                    warn!("cannot renew the lease on a running message: {e}");
                }
            }
        });
        stop
    }

    /// Runs the rules `msg` matches and decides how to settle it.
    async fn process(&self, d: &Delivery, msg: &Message, kill: CancellationToken) -> Settle {
        let matches = match_rules(&self.config.rules, msg);
        for (rule, err) in &matches.errors {
            warn!(rule = %rule.name, msg_id = %msg.id, "condition could not be evaluated, treating as no match: {err}");
        }
        if matches.rules.is_empty() {
            self.metrics.noop(&msg.source);
            info!(msg_id = %msg.id, topic = %msg.topic, "no rule matched; acked as a no-op");
            self.noops.add();
            return Settle::Ack;
        }

        self.metrics.matched(&msg.source);
        // Several rules of one message run side by side (each still takes a run slot).
        let runs = matches.rules.iter().map(|rule| self.run_rule(rule, msg, d.attempt, kill.clone()));
        let results = join_all(runs).await;

        let mut permanent = Vec::new();
        let mut failed = Vec::new();
        let mut failed_rules = Vec::new();
        let mut retry_left = false;
        for (rule, result) in matches.rules.iter().zip(results) {
            match result {
                RuleResult::Succeeded | RuleResult::AlreadyDone => {}
                RuleResult::Interrupted => return Settle::Release,
                RuleResult::Permanent(why) => permanent.push(format!("rule {:?}: {why}", rule.name)),
                RuleResult::Failed(why) => {
                    failed_rules.push(rule.name.as_str());
                    retry_left |= d.attempt <= rule.retries;
                    failed.push(format!("rule {:?} (attempt {}/{}): {why}", rule.name, d.attempt, rule.retries + 1));
                }
            }
        }
        if !permanent.is_empty() {
            permanent.extend(failed);
            self.metrics.dead_lettered(&msg.source);
            return Settle::DeadLetter(permanent.join("; "));
        }
        if failed.is_empty() {
            return Settle::Ack;
        }
        let reason = failed.join("; ");
        if retry_left {
            let delay = self.config.worker.backoff(d.attempt);
            info!(msg_id = %msg.id, ?delay, "retrying later: {reason}");
            self.metrics.retried(&failed_rules);
            Settle::Retry { delay, reason }
        } else {
            warn!(msg_id = %msg.id, "no retries left, dead-lettering: {reason}");
            self.metrics.dead_lettered(&msg.source);
            Settle::DeadLetter(reason)
        }
    }

    async fn run_rule(&self, rule: &Rule, msg: &Message, attempt: u32, kill: CancellationToken) -> RuleResult {
        match self.store.has_succeeded(&msg.id, &rule.name).await {
            Ok(true) => {
                info!(rule = %rule.name, msg_id = %msg.id, "already ran successfully for this message; skipping");
                return RuleResult::AlreadyDone;
            }
            Ok(false) => {}
            // Without the store we cannot record the run, so do not run it:
            // retry once the store is back.
            Err(e) => return RuleResult::Failed(format!("run store unavailable: {e}")),
        }
        if attempt > rule.retries + 1 {
            // Another rule of this message is still retrying; this one used
            // up its own attempts earlier.
            return RuleResult::Failed("failed earlier; no retries left".into());
        }
        let playbook = self.config.playbook_path(rule, &msg.topic);
        let _group = match self.group_lock(rule, msg).await {
            Ok(guard) => guard,
            Err(e) => return RuleResult::Failed(format!("cannot take the concurrency-group lock: {e}")),
        };
        let _slot = self.run_slots.acquire().await;
        let _busy = self.metrics.busy();
        let run_id = uuid::Uuid::new_v4().to_string();
        let new_run = NewRun {
            id: run_id.clone(),
            message_id: msg.id.clone(),
            topic: msg.topic.clone(),
            rule: rule.name.clone(),
            playbook: match &playbook {
                Ok(p) => p.display().to_string(),
                Err(PlaybookError::Missing(p)) => p.display().to_string(),
                Err(_) => format!("{:?}", rule.playbook),
            },
            attempt,
            worker: self.id.clone(),
            message: serde_json::to_value(msg).unwrap_or_default(),
        };
        if let Err(e) = self.store.start(&new_run).await {
            return RuleResult::Failed(format!("cannot record the run: {e}"));
        }
        let playbook = match playbook {
            Ok(p) => p,
            Err(e) => {
                let outcome = error_outcome(e.to_string());
                self.finish(&run_id, &outcome).await;
                return RuleResult::Permanent(e.to_string());
            }
        };
        info!(rule = %rule.name, msg_id = %msg.id, run = %run_id, attempt, playbook = %playbook.display(), "running playbook");
        let run = PlaybookRun {
            playbook,
            inventory: rule.inventory.clone().or_else(|| self.config.ansible.inventory.clone()),
            limit: rule.limit.clone(),
            timeout: rule.timeout,
            vars: extra_vars(msg, &rule.name, &run_id, attempt),
            cwd: self.config.playbooks_dir.clone(),
            // Teed as it is written, so `relflow serve` can stream a running log.
            log_path: Some(self.live_log(&run_id)),
        };
        let started = std::time::Instant::now();
        let result = self.runner.run(&run, kill).await;
        self.metrics.run_finished(&rule.name, outcome_label(&result), started.elapsed());
        let outcome = run_outcome(&result);
        info!(rule = %rule.name, run = %run_id, status = %outcome.status, exit_code = ?result.exit_code,
              ok = result.stats.ok, changed = result.stats.changed, failed = result.stats.failed, "run finished");
        self.finish(&run_id, &outcome).await;
        // The store now holds the log; the live copy was only for streaming.
        let _ = std::fs::remove_file(self.live_log(&run_id));
        match result.outcome {
            Outcome::Succeeded => RuleResult::Succeeded,
            Outcome::Cancelled => RuleResult::Interrupted,
            Outcome::SpawnFailed => RuleResult::Permanent(outcome.error.unwrap_or_default()),
            Outcome::Failed | Outcome::TimedOut => RuleResult::Failed(outcome.error.unwrap_or_default()),
        }
    }

    /// Shares `metrics` (the one `/metrics` renders) instead of a private set.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Worker {
        metrics.set_slots(self.concurrency);
        self.metrics = metrics;
        self
    }

    /// Where a run's output is teed while it runs: `data_dir/logs/<run id>.log`.
    fn live_log(&self, run_id: &str) -> std::path::PathBuf {
        live_log_path(&self.config.data_dir, run_id)
    }

    async fn finish(&self, run_id: &str, outcome: &RunOutcome) {
        if let Err(e) = self.store.finish(run_id, outcome).await {
            warn!(run = %run_id, "cannot record how the run ended: {e}");
        }
    }

    /// Waits for the rule's concurrency group: first among this worker's own
    /// runs (cheap), then across all workers through the run store.
    async fn group_lock(&self, rule: &Rule, msg: &Message) -> relflow_store::Result<Option<(KeyedGuard, LockGuard)>> {
        let Some(spec) = &rule.concurrency_group else { return Ok(None) };
        let group = spec.group_for(msg);
        let local = self.groups.lock(&group).await;
        let shared = self.store.lock(&group).await?;
        Ok(Some((local, shared)))
    }
}

/// `data_dir/logs/<run id>.log`: the live log of a running run (removed once
/// the run is recorded; the run store keeps the log).
pub fn live_log_path(data_dir: &std::path::Path, run_id: &str) -> std::path::PathBuf {
    data_dir.join("logs").join(format!("{run_id}.log"))
}

/// The `outcome` label of `relflow_runs_total`: the run store's status words.
fn outcome_label(r: &RunResult) -> &'static str {
    run_outcome_status(r.outcome).as_str()
}

fn run_outcome_status(o: Outcome) -> RunStatus {
    match o {
        Outcome::Succeeded => RunStatus::Succeeded,
        Outcome::Failed => RunStatus::Failed,
        Outcome::TimedOut => RunStatus::TimedOut,
        Outcome::Cancelled => RunStatus::Cancelled,
        Outcome::SpawnFailed => RunStatus::Error,
    }
}

/// The extra vars DESIGN.md promises a playbook: exactly `msg`, `topic`,
/// `msg_id`, `headers`, `sent_at` and `relflow`.
pub fn extra_vars(msg: &Message, rule: &str, run_id: &str, attempt: u32) -> ExtraVars {
    ExtraVars {
        msg: msg.body.clone(),
        topic: msg.topic.clone(),
        msg_id: msg.id.clone(),
        headers: msg.headers.clone(),
        sent_at: msg.sent_at.map(|t| t.to_rfc3339()),
        relflow: RunInfo { run_id: run_id.to_owned(), rule: rule.to_owned(), attempt },
    }
}

fn run_outcome(r: &RunResult) -> RunOutcome {
    RunOutcome {
        status: match r.outcome {
            Outcome::Succeeded => RunStatus::Succeeded,
            Outcome::Failed => RunStatus::Failed,
            Outcome::TimedOut => RunStatus::TimedOut,
            Outcome::Cancelled => RunStatus::Cancelled,
            Outcome::SpawnFailed => RunStatus::Error,
        },
        exit_code: r.exit_code,
        counts: TaskCounts {
            ok: r.stats.ok,
            changed: r.stats.changed,
            failed: r.stats.failed,
            skipped: r.stats.skipped,
            unreachable: r.stats.unreachable,
        },
        tasks: serde_json::to_value(&r.tasks).unwrap_or_default(),
        log: r.log.clone(),
        error: r.error.clone(),
    }
}

fn error_outcome(error: String) -> RunOutcome {
    RunOutcome {
        status: RunStatus::Error,
        exit_code: None,
        counts: TaskCounts::default(),
        tasks: serde_json::Value::Array(Vec::new()),
        log: String::new(),
        error: Some(error),
    }
}
