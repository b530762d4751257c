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

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Event {
    Task(TaskResult),
    Stats { hosts: std::collections::BTreeMap<String, Stats> },
}

/// Parses the events file. Lines that do not parse (e.g. the last line of a
/// run killed mid-write) are skipped: the results are best effort, the exit
/// status is what decides the outcome.
pub(crate) fn parse(text: &str) -> (Vec<TaskResult>, Stats) {
    let mut tasks = Vec::new();
    let mut stats = Stats::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Event>(line) {
            Ok(Event::Task(t)) => tasks.push(t),
            Ok(Event::Stats { hosts }) => {
                stats = Stats::default();
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
    (tasks, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tasks_and_sums_stats() {
        let text = r#"{"event":"task","host":"h1","play":"p","task":"t","status":"changed","msg":null}
{"event":"task","host":"h1","play":"p","task":"u","status":"ignored","msg":"boom"}
{"event":"stats","hosts":{"h1":{"ok":2,"changed":1,"failed":0,"skipped":1,"unreachable":0},"h2":{"ok":1,"changed":0,"failed":1,"skipped":0,"unreachable":1}}}
{"event":"task","host":"h1","pl"#;
        let (tasks, stats) = parse(text);
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].status, TaskStatus::Changed);
        assert_eq!(tasks[1].msg.as_deref(), Some("boom"));
        assert_eq!(stats, Stats { ok: 3, changed: 1, failed: 1, skipped: 1, unreachable: 1 });
        assert_eq!(serde_json::to_value(TaskStatus::Unreachable).ok(), Some("unreachable".into()));
    }
}
