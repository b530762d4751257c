//! The worker's part in approval gates: a gated rule's run is stored as
//! awaiting approval instead of run (the delivery is then acked, holding no
//! run slot), and a sweep dead-letters the message of a gate whose
//! approval expired. Approving and denying are in [`crate::control`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use relflow_core::config::Approval;
use relflow_core::{Message, Rule};
use relflow_store::{Request, RequestKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::control::RERUN_HEADER;
use crate::settle::RuleOutcome;
use crate::worker::Worker;

/// How often a worker looks for expired gates: one indexed read.
const SWEEP: Duration = Duration::from_secs(1);
/// Gates expired per sweep, at most.
const SWEEP_BATCH: usize = 100;

/// The reason an expired gate's message is dead-lettered with.
pub fn expired_reason(rule: &str, expires: Option<Duration>) -> String {
    match expires {
        Some(d) => {
            format!("approval expired: no approver decided on rule {rule:?} within {}", humantime::format_duration(d))
        }
        None => format!("approval expired: no approver decided on rule {rule:?} in time"),
    }
}

impl Worker {
    /// Stores `rule`'s run for `msg` as awaiting approval (as run `run_id`).
    /// A copy of a message already waiting waits once.
    pub(crate) async fn hold_for_approval(
        &self,
        rule: &Rule,
        approval: &Approval,
        msg: &Message,
        run_id: &str,
        attempt: u32,
    ) -> RuleOutcome {
        let playbook = self.config.playbook_path(rule, &msg.topic);
        let run = self.new_run(run_id, rule, msg, attempt, &playbook);
        let expires = Utc::now() + chrono::Duration::from_std(approval.expires).unwrap_or(chrono::Duration::MAX);
        match self.store.await_approval(&run, expires).await {
            Ok(true) => {
                info!(rule = %rule.name, msg_id = %msg.id, run = %run_id, %expires, "awaiting approval");
                RuleOutcome::AwaitingApproval
            }
            Ok(false) => {
                info!(rule = %rule.name, msg_id = %msg.id, "already awaiting approval; acking this copy");
                RuleOutcome::AwaitingApproval
            }
            Err(e) => RuleOutcome::Failed(format!("cannot record the run awaiting approval: {e}")),
        }
    }

    /// Expires gates past their deadline until `stop` fires. Every worker
    /// sweeps; the store's claim lets one of them expire each gate.
    pub(crate) async fn expire_approvals(self: Arc<Self>, stop: CancellationToken) {
        if self.config.rules.iter().all(|r| r.approval.is_none()) {
            return;
        }
        loop {
            match self.store.expired(Utc::now(), SWEEP_BATCH).await {
                Ok(ids) => {
                    for id in ids {
                        self.expire(&id).await;
                    }
                }
                Err(e) => warn!("cannot look for expired approvals: {e}"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(SWEEP) => {}
            }
        }
    }

    /// Claims gate `run_id` as expired, then queues its message with the
    /// expiry's request, which the worker that takes it dead-letters. The
    /// claim comes first so an approval racing the sweep wins or loses
    /// whole; a queue failure after it is logged (the message stays in the
    /// run, for a re-run).
    async fn expire(&self, run_id: &str) {
        let run = match self.store.get(run_id).await {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(e) => return warn!(run = %run_id, "cannot read the expired gate: {e}"),
        };
        let r = &run.record;
        let mut msg: Message = match serde_json::from_value(run.message.clone()) {
            Ok(msg) => msg,
            Err(e) => return warn!(run = %run_id, "the expired gate's message cannot be queued again: {e}"),
        };
        let expires = self.config.rules.iter().find(|x| x.name == r.rule).and_then(|x| x.approval.as_ref());
        let why = expired_reason(&r.rule, expires.map(|a| a.expires));
        let request = Request::new(RequestKind::Expire, &r.id, &r.message_id, &r.rule, &self.id);
        match self.store.decide(&request, Some(&why)).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return warn!(run = %run_id, "cannot expire the gate: {e}"),
        }
        msg.headers.insert(RERUN_HEADER.into(), request.id.clone().into());
        match self.queue.enqueue(&msg.to_queue_payload()).await {
            Ok(()) => info!(run = %run_id, msg_id = %msg.id, "approval expired; dead-lettering the message"),
            Err(e) => warn!(run = %run_id, msg_id = %msg.id, "approval expired, but the message could not be queued \
                            to be dead-lettered (re-run the run to run it): {e}"),
        }
    }
}
