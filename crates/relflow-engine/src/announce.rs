//! The worker's side of `[announce]`: every run state change it records
//! carries its event into the outbox in the same store transaction, the
//! message its rules gave up on gets a `run.dead_lettered` event, a message
//! too deep in a chain of runs is refused, and a [`Drainer`] sends the
//! outbox on (relflow_announce has the details).
//!
//! Nothing here can fail a run because of a bus: runs only write to the run
//! store, and the drainer publishes on its own time.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use relflow_announce::{AnnounceOptions, Drainer, RunEvent, RunStart, QUEUE};
use relflow_core::{Config, Message, Rule};
use relflow_store::{NewEvent, NewRun, RunFilter, RunOutcome};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::patience::{patiently, STORE_RETRY_FOR};
use crate::settle::{Handled, RuleOutcome};
use crate::worker::Worker;
use crate::Backends;

/// Why a worker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The playbook runner cannot be set up.
    #[error(transparent)]
    Runner(#[from] relflow_ansible::RunnerError),
    /// `[announce]` cannot be set up (signing key, intake for chaining).
    #[error("[announce]: {0}")]
    Announce(String),
    /// `[[timer]]`s cannot be set up (their intake).
    #[error("[[timer]]: {0}")]
    Timers(String),
    /// `[[source]] validate = "reject"` without usable schemas.
    #[error("[[source]] validate: {0}")]
    Schemas(String),
}

/// What the worker announces with.
pub(crate) struct Announce {
    options: AnnounceOptions,
    pub(crate) drainer: Arc<Drainer>,
}

impl Announce {
    /// `None` without `[announce]`.
    pub(crate) fn open(config: &Config, backends: &Backends, worker: &str) -> Result<Option<Announce>, WorkerError> {
        let Some(options) = crate::options::announce(config) else { return Ok(None) };
        // Chained events enter the work queue through the one intake.
        let sink = relflow_ingest::Sink::open(&crate::options::sink(config), Arc::clone(&backends.queue))
            .map_err(|e| WorkerError::Announce(format!("{e:#}")))?;
        let destinations =
            relflow_announce::destinations(&options, Some(sink)).map_err(|e| WorkerError::Announce(e.to_string()))?;
        let claimant = format!("{worker}:{}", uuid::Uuid::new_v4().simple());
        let drainer = Drainer::new(Arc::clone(&backends.store), destinations, claimant, options.max_pending);
        Ok(Some(Announce { options, drainer: Arc::new(drainer) }))
    }

    /// Runs the drainer until `stop` (then it sends what is left briefly).
    pub(crate) fn spawn(&self, metrics: Arc<crate::Metrics>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        self.drainer.observe(metrics);
        tokio::spawn(Arc::clone(&self.drainer).run(stop))
    }
}

/// A run as recorded at its start: what its end event is built from.
pub(crate) struct Started {
    pub(crate) run: NewRun,
    /// The playbook relative to `playbooks_dir`, as events name it.
    playbook: String,
    at: DateTime<Utc>,
}

impl Started {
    fn facts<'a>(&'a self, rule: &'a Rule, msg: &'a Message) -> RunStart<'a> {
        RunStart {
            run_id: &self.run.id,
            rule: &rule.name,
            playbook: &self.playbook,
            attempt: self.run.attempt,
            worker: &self.run.worker,
            started_at: self.at,
            msg,
            with_body: rule.announce_body,
        }
    }
}

impl Worker {
    /// Records `run` as started, with its `run.started` event.
    pub(crate) async fn record_start(&self, rule: &Rule, msg: &Message, run: NewRun) -> relflow_store::Result<Started> {
        let started = Started { playbook: relative(&self.config.playbooks_dir, &run.playbook), at: Utc::now(), run };
        let events = self.events(rule, || RunEvent::started(&started.facts(rule, msg)));
        patiently("record the run's start", STORE_RETRY_FOR, || self.store.start_announced(&started.run, &events))
            .await?;
        self.woke(&events);
        Ok(started)
    }

    /// Records how the run ended, with its end event. The playbook already
    /// ran, so a store error (disk full, database restarting) is retried
    /// for up to [`STORE_RETRY_FOR`] before giving up; the caller then
    /// releases the message rather than call the run failed or done.
    pub(crate) async fn record_finish(
        &self,
        rule: &Rule,
        msg: &Message,
        started: &Started,
        outcome: &RunOutcome,
    ) -> relflow_store::Result<()> {
        let events = self.events(rule, || RunEvent::finished(&started.facts(rule, msg), outcome, Utc::now()));
        let run_id = &started.run.id;
        // On disk first, so a worker that must stop before the store has it
        // does not lose it (kept.rs).
        let kept = self.kept.keep(run_id, outcome, &events).await;
        if let Err(e) = &kept {
            warn!(run = %run_id, "cannot keep how the run ended on disk (recording it in the store only): {e}");
        }
        let recorded = patiently("record how the run ended", STORE_RETRY_FOR, || {
            self.store.finish_announced(run_id, outcome, &events)
        })
        .await;
        match recorded {
            Ok(()) if kept.is_ok() => self.kept.forget(run_id),
            Ok(()) => {}
            Err(e) if e.is_fatal() => {
                let keeping = if kept.is_ok() { "kept on disk for the next start" } else { "lost" };
                self.halt(format!("cannot record how run {run_id} ended ({keeping}): {e}"));
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        crate::failpoint::hit("after-record");
        self.woke(&events);
        Ok(())
    }

    /// Writes a `run.dead_lettered` event for each rule of `msg` that gave
    /// up, before the message is dead-lettered: a worker that dies in
    /// between writes the same ids again after the redelivery.
    pub(crate) async fn announce_dead_letter(&self, msg: &Message, handled: &Handled<'_>, reason: &str) {
        let (Some(a), Handled::Ran { rules, .. }) = (&self.announce, handled) else { return };
        let mut events = Vec::new();
        for verdict in rules.iter().filter(|v| matches!(v.outcome, RuleOutcome::Failed(_) | RuleOutcome::Permanent(_)))
        {
            let Some(rule) = self.config.rules.iter().find(|r| r.name == verdict.rule && r.announce) else { continue };
            let filter = RunFilter {
                message_id: Some(msg.id.clone()),
                rule: Some(rule.name.clone()),
                limit: 1,
                ..Default::default()
            };
            match self.store.list(&filter).await {
                Ok(last) => events.extend(last.first().map(|last| {
                    let event = RunEvent::dead_lettered(last, msg, rule.announce_body, reason);
                    relflow_announce::to_outbox(&a.options, &self.config.rules, &event)
                })),
                Err(e) => warn!(msg_id = %msg.id, "cannot announce the dead letter: {e}"),
            }
        }
        if let Err(e) = self.store.announce(&events).await {
            warn!(msg_id = %msg.id, "cannot announce the dead letter: {e}");
        }
        self.woke(&events);
    }

    /// Why `msg` must not run: its runs would be too deep in a chain.
    pub(crate) fn too_deep(&self, msg: &Message) -> Option<String> {
        let a = self.announce.as_ref()?;
        relflow_announce::chain::too_deep(msg, a.options.max_chain_depth)
    }

    /// Whether no event waits to go onto the work queue (`--drain` must not
    /// stop before chained messages are queued).
    pub(crate) async fn chain_idle(&self) -> bool {
        if self.announce.is_none() {
            return true;
        }
        match self.store.outbox_backlog().await {
            Ok(backlog) => backlog.iter().all(|b| b.destination != QUEUE || b.pending == 0),
            Err(e) => {
                warn!("cannot read the outbox: {e}");
                false
            }
        }
    }

    /// The outbox rows `event` makes, or none when this rule or this worker
    /// does not announce.
    fn events(&self, rule: &Rule, event: impl FnOnce() -> RunEvent) -> Vec<NewEvent> {
        match &self.announce {
            Some(a) if rule.announce => vec![relflow_announce::to_outbox(&a.options, &self.config.rules, &event())],
            _ => Vec::new(),
        }
    }

    /// Tells the drainer there is something to send.
    fn woke(&self, events: &[NewEvent]) {
        if let (Some(a), false) = (&self.announce, events.is_empty()) {
            a.drainer.wake();
        }
    }
}

/// `playbook` (as recorded: resolved, absolute) relative to `playbooks_dir`.
fn relative(playbooks_dir: &Path, playbook: &str) -> String {
    let root = playbooks_dir.canonicalize().unwrap_or_else(|_| playbooks_dir.to_path_buf());
    Path::new(playbook).strip_prefix(&root).map_or_else(|_| playbook.to_owned(), |p| p.display().to_string())
}
