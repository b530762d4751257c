//! Per-task results, read from the JSON lines our callback plugin writes.
//!
//! The plugin (`ansible/callback_plugins/relflow_events.py`, embedded below)
//! is a *notification* callback, so Ansible's human stdout callback still
//! produces the log while we get machine-readable results on the side, from a
//! file instead of scraping the log.

use serde::{Deserialize, Serialize};

/// The plugin's source, written to the runner's work dir by `Runner::new`.
pub(crate) const CALLBACK_PLUGIN: &str = include_str!("../ansible/callback_plugins/relflow_events.py");
/// The plugin's name, for `ANSIBLE_CALLBACKS_ENABLED`.
pub(crate) const CALLBACK_NAME: &str = "relflow_events";
/// The environment variable that tells the plugin where to write.
pub(crate) const EVENTS_ENV: &str = "RELFLOW_EVENTS_FILE";

/// How one task ended on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Ok,
    Changed,
    Failed,
    Skipped,
    Unreachable,
    /// Failed, but the task has `ignore_errors: true` (Ansible's recap counts
    /// these as "ignored", and the play goes on).
    Ignored,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Ok => "ok",
            TaskStatus::Changed => "changed",
            TaskStatus::Failed => "failed",
            TaskStatus::Skipped => "skipped",
            TaskStatus::Unreachable => "unreachable",
            TaskStatus::Ignored => "ignored",
        }
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task result on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    pub host: String,
    pub play: String,
    pub task: String,
    pub status: TaskStatus,
    /// The module's `msg` (with `stderr` appended on failure), if any.
    pub msg: Option<String>,
    /// From the task's start to this host's result; runs recorded by an
    /// older relflow have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// The play recap, summed over hosts. As in Ansible, `ok` includes `changed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub ok: u32,
    pub changed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub unreachable: u32,
}

/// A play whose host pattern matched no host (it ran nothing).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct EmptyPlay {
    pub play: String,
    /// The play's `hosts:` pattern.
    pub hosts: String,
}

/// The playbook marked its failure permanent: a task set the fact
/// `relflow_permanent` (see the README).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Permanent {
    pub host: String,
    pub task: String,
    /// The fact's value if it was a string; `None` for `true`.
    pub reason: Option<String>,
}

/// Everything the callback plugin reported about one run.
#[derive(Debug, Default)]
pub(crate) struct Events {
    pub tasks: Vec<TaskResult>,
    pub stats: Stats,
    pub empty_plays: Vec<EmptyPlay>,
    /// The last permanence mark, if any.
    pub permanent: Option<Permanent>,
}

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Task(TaskResult),
    Stats { hosts: std::collections::BTreeMap<String, Stats> },
    NoHosts(EmptyPlay),
    Permanent(Permanent),
}

/// Parses the events file. Lines that do not parse (e.g. the last line of a
/// run killed mid-write) are skipped: the results are best effort, the exit
/// status is what decides the outcome.
pub(crate) fn parse(text: &str) -> Events {
    let mut events = Events::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Event>(line) {
            Ok(Event::Task(t)) => events.tasks.push(t),
            Ok(Event::NoHosts(p)) => events.empty_plays.push(p),
            Ok(Event::Permanent(p)) => events.permanent = Some(p),
            Ok(Event::Stats { hosts }) => {
                let stats = &mut events.stats;
                *stats = Stats::default();
                for s in hosts.values() {
                    stats.ok += s.ok;
                    stats.changed += s.changed;
                    stats.failed += s.failed;
                    stats.skipped += s.skipped;
                    stats.unreachable += s.unreachable;
                }
            }
            Err(e) => tracing::debug!(error = %e, "skipping unreadable callback event line"),
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tasks_and_sums_stats() {
        let text = r#"{"event":"task","host":"h1","play":"p","task":"t","status":"changed","msg":null}
{"event":"task","host":"h1","play":"p","task":"u","status":"ignored","msg":"boom"}
{"event":"no_hosts","play":"publish","hosts":"compose_hosts"}
{"event":"permanent","host":"h1","task":"mark","reason":"refused"}
{"event":"stats","hosts":{"h1":{"ok":2,"changed":1,"failed":0,"skipped":1,"unreachable":0},"h2":{"ok":1,"changed":0,"failed":1,"skipped":0,"unreachable":1}}}
{"event":"task","host":"h1","pl"#;
        let events = parse(text);
        let tasks = &events.tasks;
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].status, TaskStatus::Changed);
        assert_eq!(tasks[1].msg.as_deref(), Some("boom"));
        assert_eq!(events.stats, Stats { ok: 3, changed: 1, failed: 1, skipped: 1, unreachable: 1 });
        assert_eq!(events.empty_plays, [EmptyPlay { play: "publish".into(), hosts: "compose_hosts".into() }]);
        let mark = Permanent { host: "h1".into(), task: "mark".into(), reason: Some("refused".into()) };
        assert_eq!(events.permanent, Some(mark));
        assert_eq!(serde_json::to_value(TaskStatus::Unreachable).ok(), Some("unreachable".into()));
    }
}
