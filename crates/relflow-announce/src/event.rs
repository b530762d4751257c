//! The run event: what relflow says about a run, as the body of
//! `<prefix>.run.<kind>` messages. `docs/announce.schema.json` describes it;
//! the tests check every body built here against that schema.
//!
//! Event ids are UUIDs derived from what the event reports (v5): the run id
//! and kind for a run's own events, and the message id, rule and attempt for
//! a dead letter. A worker that dies after writing an event and before
//! settling its message writes the same id again after the redelivery, and
//! the outbox keeps one row per id: never a second event, never a lost one.

use chrono::{DateTime, SecondsFormat, Utc};
use relflow_core::Message;
use relflow_store::{NewEvent, RunOutcome, RunRecord, RunStatus, TaskCounts};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The ids of relflow's events live in this UUID namespace (a fixed v4).
const NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_3a52_9c0e_4d7e_a1b3_52c8_e0f4_7d19);

/// Errors and task messages in an event are cut to this many bytes: an
/// event is a notice, the run store has the whole story.
pub const MAX_TEXT_BYTES: usize = 1024;

/// Which change of a run an event reports; the last word of its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The run began.
    Started,
    /// It ended well.
    Succeeded,
    /// It failed (or could not start).
    Failed,
    /// Its rule's timeout stopped it.
    TimedOut,
    /// relflow stopped it (worker shutdown past its drain timeout).
    Cancelled,
    /// The message, after its rules gave up (it went to the dead letters).
    DeadLettered,
}

impl EventKind {
    /// Every kind, in the order a consumer can see them.
    pub const ALL: [EventKind; 6] = [
        EventKind::Started,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::TimedOut,
        EventKind::Cancelled,
        EventKind::DeadLettered,
    ];

    /// The word in topics and bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Succeeded => "succeeded",
            EventKind::Failed => "failed",
            EventKind::TimedOut => "timed_out",
            EventKind::Cancelled => "cancelled",
            EventKind::DeadLettered => "dead_lettered",
        }
    }

    /// The end event of a run that ended in `status`. A run that could not
    /// start (`error`) is a failure to its consumers.
    pub fn ended(status: RunStatus) -> EventKind {
        match status {
            RunStatus::Succeeded => EventKind::Succeeded,
            RunStatus::TimedOut => EventKind::TimedOut,
            RunStatus::Cancelled | RunStatus::Abandoned | RunStatus::Denied => EventKind::Cancelled,
            // A gate that opened ran its work as another run, announced by itself.
            RunStatus::Approved => EventKind::Succeeded,
            RunStatus::Failed | RunStatus::Error | RunStatus::Running | RunStatus::AwaitingApproval => {
                EventKind::Failed
            }
        }
    }

    /// `<prefix>.run.<kind>`.
    pub fn topic(self, prefix: &str) -> String {
        format!("{prefix}.run.{}", self.as_str())
    }

    /// fedora-messaging's severity (`logging` levels): INFO, WARNING, ERROR.
    pub fn severity(self) -> i64 {
        match self {
            EventKind::Started | EventKind::Succeeded => 20,
            EventKind::Cancelled => 30,
            EventKind::Failed | EventKind::TimedOut | EventKind::DeadLettered => 40,
        }
    }
}

/// The id of run `run_id`'s `kind` event.
pub fn event_id(run_id: &str, kind: EventKind) -> String {
    Uuid::new_v5(&NAMESPACE, format!("run\n{run_id}\n{}", kind.as_str()).as_bytes()).to_string()
}

/// The id of the dead-letter event of message `message_id` after `rule`
/// gave up at `attempt`.
pub fn dead_letter_event_id(message_id: &str, rule: &str, attempt: u32) -> String {
    Uuid::new_v5(&NAMESPACE, format!("dead\n{message_id}\n{rule}\n{attempt}").as_bytes()).to_string()
}

/// Every event id a recorded run can have announced: what its events'
/// messages are called if they started runs of their own.
pub fn event_ids(run: &RunRecord) -> Vec<String> {
    let mut ids: Vec<String> = EventKind::ALL[..5].iter().map(|k| event_id(&run.id, *k)).collect();
    ids.push(dead_letter_event_id(&run.message_id, &run.rule, run.attempt));
    ids
}

/// The task counts, as in ansible's recap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // ansible's recap words
pub struct Tasks {
    pub ok: u32,
    pub changed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub unreachable: u32,
}

impl From<TaskCounts> for Tasks {
    fn from(c: TaskCounts) -> Self {
        Tasks { ok: c.ok, changed: c.changed, failed: c.failed, skipped: c.skipped, unreachable: c.unreachable }
    }
}

/// The first task that failed (or whose host was unreachable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedTask {
    /// The task's name.
    pub name: String,
    /// Where it failed.
    pub host: String,
    /// The module's message, cut to [`MAX_TEXT_BYTES`].
    pub message: Option<String>,
}

/// The message that started the run (causation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    /// Its id (for a chained run, the event id of the event that started it).
    pub message_id: String,
    /// Its topic.
    pub topic: String,
    /// When that message is itself a relflow event: the run it reported.
    pub run_id: Option<String>,
    /// Its body, only for rules with `announce_body = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Map<String, Value>>,
}

impl Cause {
    /// What an event says about `msg`, with its body when `with_body`.
    pub fn of(msg: &Message, with_body: bool) -> Cause {
        Cause {
            message_id: msg.id.clone(),
            topic: msg.topic.clone(),
            run_id: reported_run(msg).map(str::to_owned),
            body: with_body.then(|| msg.body.clone()),
        }
    }
}

/// The run a relflow event reports, if `msg` is one (its body's `event_id`
/// is its own id). Anyone can publish such a body; callers that show the
/// link check it against the run store.
pub fn reported_run(msg: &Message) -> Option<&str> {
    let own = msg.body.get("event_id").and_then(Value::as_str) == Some(msg.id.as_str());
    own.then(|| msg.body.get("run_id").and_then(Value::as_str)).flatten()
}

/// The body of every relflow event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    /// Unique; the id of the message it is published as.
    pub event_id: String,
    /// What happened (the topic's last word).
    pub event: EventKind,
    /// The run (for a dead letter, its rule's last run).
    pub run_id: String,
    /// The rule.
    pub rule: String,
    /// Relative to `playbooks_dir`.
    pub playbook: String,
    /// 1, +1 per retry.
    pub attempt: u32,
    /// The run store's status word (`running` while it runs).
    pub status: RunStatus,
    /// ansible-playbook's exit code, when it ran.
    pub exit_code: Option<i32>,
    /// When the run started.
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    /// When it ended (`None` in `started`).
    #[serde(with = "rfc3339_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    /// How long it took.
    pub duration_seconds: Option<f64>,
    /// Task counts.
    pub tasks: Tasks,
    /// The first failing task.
    pub failed_task: Option<FailedTask>,
    /// Why it did not succeed, cut to [`MAX_TEXT_BYTES`].
    pub error: Option<String>,
    /// The message that started it.
    pub cause: Cause,
    /// Runs between the first outside message and this event: 1 for a run
    /// an outside message started, +1 for each run started by an event.
    pub chain_depth: u32,
    /// `host:pid` of the worker that ran it.
    pub worker: String,
    /// `dead_lettered` only: why the message was given up on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A run as it starts: what its events are built from.
#[derive(Debug, Clone)]
#[allow(missing_docs)] // as in RunEvent
pub struct RunStart<'a> {
    pub run_id: &'a str,
    pub rule: &'a str,
    pub playbook: &'a str,
    pub attempt: u32,
    pub worker: &'a str,
    pub started_at: DateTime<Utc>,
    /// The triggering message.
    pub msg: &'a Message,
    /// Put the triggering body in the events (`announce_body`).
    pub with_body: bool,
}

impl RunEvent {
    /// `run.started`.
    pub fn started(run: &RunStart<'_>) -> RunEvent {
        RunEvent {
            event_id: event_id(run.run_id, EventKind::Started),
            event: EventKind::Started,
            run_id: run.run_id.to_owned(),
            rule: run.rule.to_owned(),
            playbook: run.playbook.to_owned(),
            attempt: run.attempt,
            status: RunStatus::Running,
            exit_code: None,
            started_at: run.started_at,
            finished_at: None,
            duration_seconds: None,
            tasks: TaskCounts::default().into(),
            failed_task: None,
            error: None,
            cause: Cause::of(run.msg, run.with_body),
            chain_depth: crate::chain::depth(run.msg).saturating_add(1),
            worker: run.worker.to_owned(),
            reason: None,
        }
    }

    /// The end event of `run`, which ended as `outcome` at `finished_at`.
    pub fn finished(run: &RunStart<'_>, outcome: &RunOutcome, finished_at: DateTime<Utc>) -> RunEvent {
        let kind = EventKind::ended(outcome.status);
        let took = (finished_at - run.started_at).num_milliseconds().max(0) as f64 / 1000.0;
        RunEvent {
            event_id: event_id(run.run_id, kind),
            event: kind,
            status: outcome.status,
            exit_code: outcome.exit_code,
            finished_at: Some(finished_at),
            duration_seconds: Some(took),
            tasks: outcome.counts.into(),
            failed_task: failed_task(&outcome.tasks),
            error: outcome.error.as_deref().map(cut),
            ..RunEvent::started(run)
        }
    }

    /// `run.dead_lettered`: `msg` was given up on after `last`, the last run
    /// of its rule, for `reason`.
    pub fn dead_lettered(last: &RunRecord, msg: &Message, with_body: bool, reason: &str) -> RunEvent {
        RunEvent {
            event_id: dead_letter_event_id(&msg.id, &last.rule, last.attempt),
            event: EventKind::DeadLettered,
            run_id: last.id.clone(),
            rule: last.rule.clone(),
            playbook: last.playbook.clone(),
            attempt: last.attempt,
            status: last.status,
            exit_code: last.exit_code,
            started_at: last.started_at,
            finished_at: last.finished_at,
            duration_seconds: last.finished_at.map(|f| (f - last.started_at).num_milliseconds().max(0) as f64 / 1000.0),
            tasks: last.counts.into(),
            failed_task: None,
            error: last.error.as_deref().map(cut),
            cause: Cause::of(msg, with_body),
            chain_depth: crate::chain::depth(msg).saturating_add(1),
            worker: last.worker.clone(),
            reason: Some(cut(reason)),
        }
    }

    /// The body as JSON.
    pub fn to_json(&self) -> Value {
        // A struct of plain values always serializes.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The outbox row(s) for this event: its topic under `prefix`, and the
    /// headers every destination sends (fedora-messaging's, which also suit
    /// fedmsg and the work queue, and the chain depth).
    pub fn to_new_event(&self, prefix: &str, destinations: Vec<String>) -> NewEvent {
        let mut headers = serde_json::Map::new();
        headers.insert("fedora_messaging_schema".into(), "base.message".into());
        headers.insert("fedora_messaging_severity".into(), self.event.severity().into());
        headers.insert("priority".into(), 0.into());
        headers.insert(crate::chain::CHAIN_DEPTH_HEADER.into(), self.chain_depth.into());
        NewEvent {
            id: self.event_id.clone(),
            topic: self.event.topic(prefix),
            body: self.to_json(),
            headers,
            destinations,
        }
    }
}

/// The first failed or unreachable task of a run's task list (the runner's
/// JSON: `{task, host, status, msg}` items).
fn failed_task(tasks: &Value) -> Option<FailedTask> {
    let failed = tasks.as_array()?.iter().find(|t| matches!(t["status"].as_str(), Some("failed" | "unreachable")))?;
    Some(FailedTask {
        name: failed["task"].as_str().unwrap_or_default().to_owned(),
        host: failed["host"].as_str().unwrap_or_default().to_owned(),
        message: failed["msg"].as_str().map(cut),
    })
}

/// `text` cut to [`MAX_TEXT_BYTES`] on a character boundary, with `...`.
fn cut(text: &str) -> String {
    relflow_core::truncate(text, MAX_TEXT_BYTES)
}

/// Times as RFC 3339 with milliseconds and `Z`, the same in every event.
mod rfc3339 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::deserialize(d)
    }
}

mod rfc3339_opt {
    use super::*;

    pub fn serialize<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_uuids() {
        assert_eq!(event_id("r1", EventKind::Started), event_id("r1", EventKind::Started));
        assert_ne!(event_id("r1", EventKind::Started), event_id("r1", EventKind::Succeeded));
        assert_ne!(event_id("r1", EventKind::Started), event_id("r2", EventKind::Started));
        assert_ne!(dead_letter_event_id("m", "r", 1), dead_letter_event_id("m", "r", 2));
        assert!(Uuid::parse_str(&dead_letter_event_id("m", "r", 1)).is_ok());
    }

    #[test]
    fn every_status_ends_in_one_kind() {
        assert_eq!(EventKind::ended(RunStatus::Error), EventKind::Failed);
        assert_eq!(EventKind::ended(RunStatus::TimedOut).topic("p"), "p.run.timed_out");
    }
}
