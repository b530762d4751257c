//! One rule for one message: from "should this run at all?" to the recorded
//! result, one step per function.

use relflow_ansible::PlaybookRun;
use relflow_core::config::PlaybookError;
use relflow_core::{Message, Rule};
use relflow_store::{LockGuard, NewRun, Request, RequestKind, RunFilter};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::announce::Started;
use crate::locks::KeyedGuard;
use crate::record;
use crate::settle::RuleOutcome;
use crate::stateful::BatchRun;
use crate::worker::Worker;

impl Worker {
    /// Runs `rule` for `msg` (attempt `attempt`) unless that is already done
    /// or cannot help, and records the run. With `rerun` (an operator's
    /// request, taken for run id `.1`), it runs whatever happened before.
    pub(crate) async fn run_rule(
        &self,
        rule: &Rule,
        msg: &Message,
        batch: Option<&BatchRun>,
        attempt: u32,
        kill: CancellationToken,
        rerun: Option<&(Request, String)>,
    ) -> RuleOutcome {
        // Held until the run is recorded, across workers: see `lock_run`.
        let _same_run = match self.store.lock_run(&msg.id, &rule.name).await {
            Ok(guard) => guard,
            Err(e) => return RuleOutcome::Failed(format!("cannot take the run's lock: {e}")),
        };
        if rerun.is_none() {
            if let Some(skip) = self.preflight(rule, msg, attempt).await {
                return skip;
            }
        }
        // Gated, unless this is the approved run itself.
        let approved = rerun.is_some_and(|(req, _)| req.kind == RequestKind::Approve);
        if let (Some(approval), false) = (&rule.approval, approved) {
            let run_id = rerun.map_or_else(|| uuid::Uuid::new_v4().to_string(), |(_, id)| id.clone());
            let attempt = self.attempt_number(rule, msg, attempt).await;
            return self.hold_for_approval(rule, approval, msg, &run_id, attempt).await;
        }
        let playbook = match batch.and_then(|b| b.playbook.as_deref()) {
            Some(other) => self.config.playbook_file(other),
            None => self.config.playbook_path(rule, &msg.topic),
        };
        let _group = match self.group_lock(rule, msg).await {
            Ok(guard) => guard,
            Err(e) => return RuleOutcome::Failed(format!("cannot take the concurrency-group lock: {e}")),
        };
        let _slot = tokio::select! {
            slot = self.run_slots.acquire() => slot,
            // Shutting down before it started: give the message back untouched.
            _ = self.stopping.cancelled() => return RuleOutcome::Interrupted,
        };
        let _busy = self.metrics.busy();
        let run_id = rerun.map_or_else(|| uuid::Uuid::new_v4().to_string(), |(_, id)| id.clone());
        let attempt = self.attempt_number(rule, msg, attempt).await;
        let started = match self.record_start(rule, msg, self.new_run(&run_id, rule, msg, attempt, &playbook)).await {
            Ok(started) => started,
            Err(e) => return RuleOutcome::Failed(format!("cannot record the run: {e}")),
        };
        match playbook {
            Ok(playbook) => self.execute(rule, msg, &started, playbook, batch, kill).await,
            Err(e) => {
                // Dead-lettered whether or not the record sticks: it can never run.
                let _ = self.record_finish(rule, msg, &started, &record::error_outcome(e.to_string())).await;
                RuleOutcome::Permanent(e.to_string())
            }
        }
    }

    /// Why this rule need not (or must not) run now, if so.
    async fn preflight(&self, rule: &Rule, msg: &Message, attempt: u32) -> Option<RuleOutcome> {
        let done = || self.store.has_succeeded(&msg.id, &rule.name);
        match crate::patience::patiently("look up earlier runs", crate::patience::STORE_RETRY_FOR, done).await {
            Ok(true) => {
                info!(rule = %rule.name, msg_id = %msg.id, "already ran successfully for this message; skipping");
                return Some(RuleOutcome::AlreadyDone);
            }
            Ok(false) => {}
            // Without the store we cannot record the run, so do not run it:
            // retry once the store is back.
            Err(e) => return Some(RuleOutcome::Failed(format!("run store unavailable: {e}"))),
        }
        // Another rule of this message is still retrying; this one used up
        // its own attempts earlier.
        (attempt > rule.retries + 1).then(|| RuleOutcome::Failed("failed earlier; no retries left".into()))
    }

    /// Runs the playbook and records how it ended.
    async fn execute(
        &self,
        rule: &Rule,
        msg: &Message,
        started: &Started,
        playbook: std::path::PathBuf,
        batch: Option<&BatchRun>,
        kill: CancellationToken,
    ) -> RuleOutcome {
        let (run_id, attempt) = (started.run.id.as_str(), started.run.attempt);
        info!(rule = %rule.name, msg_id = %msg.id, run = %run_id, attempt, playbook = %playbook.display(), "running playbook");
        let mut vars = record::extra_vars(msg, &rule.name, run_id, attempt, &self.config.compat);
        vars.msgs = batch.map(|b| b.msgs.clone());
        let run = PlaybookRun {
            playbook,
            inventory: rule.inventory.clone().or_else(|| self.config.ansible.inventory.clone()),
            limit: rule.limit.clone(),
            timeout: rule.timeout,
            vars,
            cwd: self.config.playbook_cwd(),
            // Teed as it is written, so `relflow serve` can stream a running log.
            log_path: Some(self.logs.path(run_id)),
            allow_no_hosts: rule.allow_no_hosts,
        };
        let clock = std::time::Instant::now();
        let stop = kill.child_token();
        let watcher = tokio::spawn(watch_cancel(std::sync::Arc::clone(&self.store), run_id.to_owned(), stop.clone()));
        let result = self.runner.run(&run, stop.clone()).await;
        // Cancelled, but not by this worker's shutdown: an operator asked.
        let operator = stop.is_cancelled() && !kill.is_cancelled();
        let cancelled_by = if operator && matches!(result.outcome, relflow_ansible::Outcome::Cancelled) {
            watcher.await.ok().flatten()
        } else {
            watcher.abort();
            None
        };
        let mut outcome = record::run_outcome(&result);
        if let Some(by) = &cancelled_by {
            outcome.error = Some(format!("cancelled by {by}"));
        }
        self.metrics.run_finished(&rule.name, outcome.status.as_str(), clock.elapsed());
        info!(rule = %rule.name, run = %run_id, status = %outcome.status, exit_code = result.exit_code,
              ok = result.stats.ok, changed = result.stats.changed, failed = result.stats.failed, "run finished");
        let recorded = self.record_finish(rule, msg, started, &outcome).await;
        self.logs.finished(run_id);
        if recorded.is_err() {
            // Not the playbook's failure, and not done either while nothing
            // says so: the message goes back for a later attempt.
            warn!(rule = %rule.name, run = %run_id, "the run ended but is not recorded; releasing its message");
            return RuleOutcome::Interrupted;
        }
        match cancelled_by {
            Some(by) => RuleOutcome::Cancelled(by),
            None => record::rule_outcome(&result),
        }
    }

    /// The attempt number to record: one more than the runs of this rule for
    /// this message so far, so it keeps counting across redeliveries,
    /// replays and re-runs (the queue's own count restarts with each).
    pub(crate) async fn attempt_number(&self, rule: &Rule, msg: &Message, queue_attempt: u32) -> u32 {
        let filter =
            RunFilter { message_id: Some(msg.id.clone()), rule: Some(rule.name.clone()), ..Default::default() };
        match self.store.count(&filter).await {
            Ok(before) => queue_attempt.max(u32::try_from(before).unwrap_or(u32::MAX).saturating_add(1)),
            Err(e) => {
                warn!("cannot count earlier runs (recording the queue's attempt number): {e}");
                queue_attempt
            }
        }
    }

    pub(crate) fn new_run(
        &self,
        run_id: &str,
        rule: &Rule,
        msg: &Message,
        attempt: u32,
        playbook: &Result<std::path::PathBuf, PlaybookError>,
    ) -> NewRun {
        NewRun {
            id: run_id.to_owned(),
            message_id: msg.id.clone(),
            topic: msg.topic.clone(),
            rule: rule.name.clone(),
            playbook: match playbook {
                Ok(p) | Err(PlaybookError::Missing(p)) => p.display().to_string(),
                Err(_) => format!("{:?}", rule.playbook),
            },
            attempt,
            worker: self.id.clone(),
            message: serde_json::to_value(msg).unwrap_or_default(),
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

/// How often a running run's worker asks the store whether an operator
/// cancelled it: one primary-key read, so a cancel lands within about this.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Polls for a cancel request for `run_id`; on one, fires `stop` and
/// returns who asked. Runs until aborted otherwise.
async fn watch_cancel(
    store: std::sync::Arc<dyn relflow_store::RunStore>,
    run_id: String,
    stop: CancellationToken,
) -> Option<String> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(CANCEL_POLL) => {}
        }
        match store.cancel_requested(&run_id).await {
            Ok(Some(by)) => {
                info!(run = %run_id, %by, "cancel requested; stopping the run");
                stop.cancel();
                return Some(by);
            }
            Ok(None) => {}
            Err(e) => warn!(run = %run_id, "cannot check for a cancel request: {e}"),
        }
    }
}
