//! Stateful rules in the worker: `coalesce` and `join`.
//!
//! A message a stateful rule matches does not run it: it is added to the
//! rule's open batch for its key in the run store, and only then acked
//! (relflow_store::state has the guarantees). Every worker runs a closer
//! that claims batches that are due (window over, `max` reached, join
//! complete or timed out) and queues one message for each, topic
//! [`BATCH_TOPIC`], carrying only the batch id. That message goes through
//! the queue like any other, so the batch's run gets the ordinary run
//! record, retries, dead letters and skip-if-succeeded (its id is derived
//! from the batch, so a batch queued twice runs once). Its playbook gets
//! `msgs` (coalesce: the bodies in arrival order; join: per topic pattern)
//! and `msg`, the last message.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use relflow_core::condition::{Condition, Input};
use relflow_core::config::stateful::CoalesceMode;
use relflow_core::{Message, Rule};
use relflow_queue::Delivery;
use relflow_store::{Added, Batch, BatchAdd, BatchKind, DueBatch, Limit};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::settle::{Handled, RuleOutcome, RuleVerdict, Settle};
use crate::worker::Worker;

/// The topic of a closed batch's message.
pub const BATCH_TOPIC: &str = "relflow.batch";
/// Its source: only the closer makes such messages.
const BATCH_SOURCE: &str = "relflow.batch";
/// How often an idle closer looks for batches other workers filled or
/// whose window ran out.
const CLOSE_POLL: Duration = Duration::from_millis(500);
/// How long a claimed batch is held before another worker may queue it.
const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// What a batch's run gets beyond an ordinary run.
pub(crate) struct BatchRun {
    /// The `msgs` var.
    pub(crate) msgs: Value,
    /// `on_timeout`: a different playbook (relative to playbooks_dir).
    pub(crate) playbook: Option<PathBuf>,
}

/// The message id of a batch's message (and so of its runs).
fn batch_message_id(batch: &str) -> String {
    format!("relflow-batch-{batch}")
}

/// What [`Worker::buffer`] adds `msg` to for `rule`, or why it adds nothing.
enum Plan {
    Add(BatchAdd),
    Nothing(String),
}

fn key(expr: &Condition, kind: &str, msg: &Message) -> Result<String, RuleOutcome> {
    expr.evaluate_string(&Input::new(msg)).map_err(|e| {
        RuleOutcome::Permanent(format!("{kind} key `{}` cannot be evaluated on this message: {e}", expr.source()))
    })
}

fn plan(rule: &Rule, msg: &Message) -> Result<Plan, RuleOutcome> {
    let message = serde_json::to_value(msg).unwrap_or_default();
    let add = |kind, key, part: String, window, limit, latest| BatchAdd {
        rule: rule.name.clone(),
        key,
        kind,
        message_id: msg.id.clone(),
        part,
        message: message.clone(),
        window,
        limit,
        latest,
    };
    if let Some(c) = &rule.coalesce {
        let key = key(&c.key, "coalesce", msg)?;
        let latest = c.mode == CoalesceMode::Latest;
        return Ok(Plan::Add(add(BatchKind::Coalesce, key, String::new(), c.window, Limit::Max(c.max), latest)));
    }
    let Some(j) = &rule.join else { return Ok(Plan::Nothing("not a stateful rule".into())) };
    let Some(part) = j.part_of(&msg.topic) else {
        return Ok(Plan::Nothing(format!("topic {} is none of the join's topics", msg.topic)));
    };
    let key = key(&j.key, "join", msg)?;
    let parts = j.parts.iter().map(|p| (p.topic.as_str().to_owned(), p.count)).collect();
    let part = part.topic.as_str().to_owned();
    Ok(Plan::Add(add(BatchKind::Join, key, part, j.timeout, Limit::Parts(parts), false)))
}

/// Whether `rule` buffers messages instead of running for each.
pub(crate) fn is_stateful(rule: &Rule) -> bool {
    rule.coalesce.is_some() || rule.join.is_some()
}

impl Worker {
    /// Adds `msg` to `rule`'s batch for its key; acked once that is durable.
    pub(crate) async fn buffer(&self, rule: &Rule, msg: &Message) -> RuleOutcome {
        let add = match plan(rule, msg) {
            Ok(Plan::Add(add)) => add,
            Ok(Plan::Nothing(why)) => {
                info!(rule = %rule.name, msg_id = %msg.id, "nothing to buffer: {why}");
                return RuleOutcome::AlreadyDone;
            }
            Err(outcome) => return outcome,
        };
        let kind = add.kind.as_str();
        match self.store.add_to_batch(&add).await {
            Ok(Added::Buffered { batch, count, due_at, full }) => {
                info!(rule = %rule.name, msg_id = %msg.id, key = %add.key, batch = %batch, count, %due_at, full,
                      "{kind}: buffered into key {:?}", add.key);
                if full {
                    self.batches_due.notify_one();
                }
                RuleOutcome::AlreadyDone
            }
            Ok(Added::Duplicate { batch }) => {
                info!(rule = %rule.name, msg_id = %msg.id, batch = %batch, "{kind}: already in its batch; acked");
                RuleOutcome::AlreadyDone
            }
            Ok(Added::Late { outcome }) => {
                info!(rule = %rule.name, msg_id = %msg.id, key = %add.key,
                      "join for key {:?} already {outcome}: late message starts nothing; acked as a no-op", add.key);
                RuleOutcome::AlreadyDone
            }
            Err(e) => RuleOutcome::Failed(format!("run store unavailable: {e}")),
        }
    }

    /// Claims due batches and queues their messages until `stop`.
    pub(crate) async fn close_batches(self: Arc<Self>, stop: CancellationToken) {
        loop {
            loop {
                match self.store.claim_due_batch(&self.id, CLAIM_LEASE).await {
                    Ok(Some(due)) => self.queue_batch(&due).await,
                    Ok(None) => break,
                    Err(e) => {
                        warn!("cannot look for due batches: {e}");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.batches_due.notified() => {}
                _ = tokio::time::sleep(CLOSE_POLL) => {}
            }
        }
    }

    /// Queues the message of a claimed batch. On failure the claim runs out
    /// and some worker queues it later.
    async fn queue_batch(&self, due: &DueBatch) {
        let msg = Message {
            id: batch_message_id(&due.id),
            topic: BATCH_TOPIC.into(),
            body: match json!({"batch": due.id, "rule": due.rule, "key": due.key, "outcome": due.outcome}) {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            headers: Map::new(),
            sent_at: Some(Utc::now()),
            source: BATCH_SOURCE.into(),
        };
        if let Err(e) = self.queue.enqueue(&msg.to_queue_payload()).await {
            warn!(batch = %due.id, "cannot queue the closed batch (it is queued again after its claim expires): {e}");
            return;
        }
        info!(rule = %due.rule, key = %due.key, batch = %due.id, outcome = %due.outcome, "{}: closed", due.kind.as_str());
        if let Err(e) = self.store.batch_sent(&due.id).await {
            warn!(batch = %due.id, "cannot mark the batch queued (it may be queued again; it runs once): {e}");
        }
    }

    /// Whether `msg` is a closed batch's message (made by a closer).
    pub(crate) fn is_batch(msg: &Message) -> bool {
        msg.topic == BATCH_TOPIC && msg.source == BATCH_SOURCE
    }

    /// Runs a closed batch's rule and decides how to settle its message.
    pub(crate) async fn process_batch(&self, d: &Delivery, msg: &Message, kill: CancellationToken) -> Settle {
        let id = msg.body.get("batch").and_then(Value::as_str).unwrap_or_default();
        let batch = match self.store.batch(id).await {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                warn!(msg_id = %msg.id, "batch {id:?} is not in the run store; acked as a no-op");
                return crate::settle(&Handled::NoMatch, &self.config.worker);
            }
            Err(e) => return Settle::Retry { delay: self.config.worker.backoff(1), reason: e.to_string() },
        };
        let Some(rule) = self.config.rules.iter().find(|r| r.name == batch.rule) else {
            warn!(msg_id = %msg.id, rule = %batch.rule, "the batch's rule is no longer configured; acked as a no-op");
            return crate::settle(&Handled::NoMatch, &self.config.worker);
        };
        let outcome = self.run_batch(rule, &batch, d.attempt, kill).await;
        let verdict = RuleVerdict { rule: &rule.name, retries: rule.retries, outcome };
        self.conclude(d, msg, Handled::Ran { attempt: d.attempt, rules: vec![verdict] }).await
    }

    async fn run_batch(&self, rule: &Rule, batch: &Batch, attempt: u32, kill: CancellationToken) -> RuleOutcome {
        let timed_out = batch.outcome.as_deref() == Some("timed_out");
        let on_timeout = rule.join.as_ref().and_then(|j| j.on_timeout.clone());
        if timed_out && on_timeout.is_none() {
            return RuleOutcome::Permanent(format!(
                "join timed out for key {:?} with {} of its messages",
                batch.key,
                batch.items.len()
            ));
        }
        let Some(last) = batch.items.last() else {
            return RuleOutcome::Permanent(format!("batch {} holds no messages", batch.id));
        };
        let mut run_msg: Message = match serde_json::from_value(last.message.clone()) {
            Ok(m) => m,
            Err(e) => {
                return RuleOutcome::Permanent(format!("batch {}: a stored message is unreadable: {e}", batch.id))
            }
        };
        run_msg.id = batch_message_id(&batch.id);
        let run = BatchRun { msgs: msgs(batch), playbook: on_timeout.filter(|_| timed_out) };
        self.run_rule(rule, &run_msg, Some(&run), attempt, kill, None).await
    }
}

/// The `msgs` var: coalesce, the bodies in arrival order; join, the bodies
/// per topic pattern.
fn msgs(batch: &Batch) -> Value {
    let body = |item: &relflow_store::BatchItem| item.message.get("body").cloned().unwrap_or(Value::Null);
    match batch.kind {
        BatchKind::Coalesce => Value::Array(batch.items.iter().map(body).collect()),
        BatchKind::Join => {
            let mut parts = Map::new();
            for item in &batch.items {
                let list = parts.entry(item.part.clone()).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = list {
                    list.push(body(item));
                }
            }
            Value::Object(parts)
        }
    }
}

/// What a stateful rule would do with `msg`, in words (`relflow dry-run`);
/// `None` for an ordinary rule.
pub fn would_buffer(rule: &Rule, msg: &Message) -> Option<String> {
    if !is_stateful(rule) {
        return None;
    }
    Some(match plan(rule, msg) {
        Ok(Plan::Add(add)) if add.kind == BatchKind::Coalesce => format!(
            "would coalesce into key {:?}: one run when the window closes ({} after its first message, or at {} \
             messages)",
            add.key,
            humantime::format_duration(add.window),
            rule.coalesce.as_ref().map_or(0, |c| c.max)
        ),
        Ok(Plan::Add(add)) => format!(
            "would join into key {:?} as {}: one run once every topic arrived, within {}",
            add.key,
            add.part,
            humantime::format_duration(add.window)
        ),
        Ok(Plan::Nothing(why)) => format!("would buffer nothing: {why}"),
        Err(RuleOutcome::Permanent(why)) => format!("would be dead-lettered: {why}"),
        Err(other) => format!("{other:?}"),
    })
}

/// An open coalesce window or join as operators see it (`relflow status`,
/// `GET /api/batches`, the web page).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchView {
    /// `coalesce` or `join`.
    pub kind: BatchKind,
    /// The rule.
    pub rule: String,
    /// The key its messages share.
    pub key: String,
    /// The batch id (its run's message is `relflow-batch-<id>`).
    pub id: String,
    /// When its first message arrived.
    pub opened_at: chrono::DateTime<Utc>,
    /// When it closes (window end, join timeout).
    pub closes_at: chrono::DateTime<Utc>,
    /// Messages so far, per topic pattern of a join ("" for coalesce).
    pub arrived: Map<String, Value>,
    /// A join: what it still waits for, per topic pattern.
    pub missing: Map<String, Value>,
}

/// The open batches with what each join still waits for (from the rules
/// in `config`; a rule no longer configured shows nothing missing).
pub fn batch_views(config: &relflow_core::Config, open: Vec<relflow_store::OpenBatch>) -> Vec<BatchView> {
    open.into_iter()
        .map(|b| {
            let count = |part: &str| b.arrived.iter().find(|(p, _)| p == part).map_or(0, |(_, n)| *n);
            let join = config.rules.iter().find(|r| r.name == b.rule).and_then(|r| r.join.as_ref());
            let missing = join
                .map(|j| j.parts.iter())
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let short = u64::from(p.count).saturating_sub(count(p.topic.as_str()));
                    (short > 0).then(|| (p.topic.as_str().to_owned(), Value::from(short)))
                })
                .collect();
            BatchView {
                kind: b.kind,
                arrived: b.arrived.iter().map(|(p, n)| (p.clone(), Value::from(*n))).collect(),
                missing,
                rule: b.rule,
                key: b.key,
                id: b.id,
                opened_at: b.opened_at,
                closes_at: b.due_at,
            }
        })
        .collect()
}
