//! How a run ended, and the one function that decides it from what the run
//! left behind: exit status, the callback plugin's events, the log.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::{Events, Stats, TaskResult, TaskStatus};
use crate::supervise::{SPAWN_FAILED_EXIT, SPAWN_FAILED_MARKER};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    /// The playbook or `ansible-playbook` could not be started at all.
    SpawnFailed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timedout",
            Outcome::Cancelled => "cancelled",
            Outcome::SpawnFailed => "spawnfailed",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything recorded about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub outcome: Outcome,
    /// ansible-playbook's exit code (128 + signal if it was killed); `None`
    /// if it never ran or the supervisor itself had to be killed.
    pub exit_code: Option<i32>,
    /// stdout and stderr, interleaved as written.
    pub log: String,
    pub tasks: Vec<TaskResult>,
    pub stats: Stats,
    /// Why, in a sentence, when the outcome is not `Succeeded`.
    pub error: Option<String>,
    /// A failure that retrying cannot fix: no host matched, or the playbook
    /// said so (the `relflow_permanent` fact).
    #[serde(default)]
    pub permanent: bool,
}

impl RunResult {
    pub(crate) fn spawn_failed(error: String) -> Self {
        RunResult {
            outcome: Outcome::SpawnFailed,
            exit_code: None,
            log: String::new(),
            tasks: Vec::new(),
            stats: Stats::default(),
            error: Some(error),
            permanent: false,
        }
    }
}

/// What a finished run left behind, for [`verdict`].
pub(crate) struct Ending<'a> {
    pub exit_code: Option<i32>,
    /// Set if the runner stopped the run (timeout or cancel).
    pub stopped: Option<Outcome>,
    pub timeout: Duration,
    /// The supervisor's own stderr (spawn failures are reported there).
    pub supervisor_err: &'a str,
    pub log: &'a str,
    pub events: &'a Events,
    pub limit: Option<&'a str>,
    pub allow_no_hosts: bool,
}

/// `(outcome, error, permanent)`, in this order of precedence: stopped by
/// the runner; could not start; no host matched (unless allowed); exit 0;
/// a failure the playbook marked permanent; any other failure.
pub(crate) fn verdict(e: &Ending<'_>) -> (Outcome, Option<String>, bool) {
    if let Some(why) = e.stopped {
        let error = match why {
            Outcome::TimedOut => format!("timed out after {}", humanize(e.timeout)),
            _ => "cancelled".to_string(),
        };
        return (why, Some(error), false);
    }
    if e.exit_code == Some(SPAWN_FAILED_EXIT) && e.supervisor_err.contains(SPAWN_FAILED_MARKER) {
        let line = e.supervisor_err.lines().find(|l| l.contains(SPAWN_FAILED_MARKER)).unwrap_or_default();
        return (Outcome::SpawnFailed, Some(line.trim_start_matches("relflow-supervise: ").to_string()), false);
    }
    let limit_empty = limit_matched_nothing(e);
    if let Some(why) = no_hosts(e, limit_empty) {
        if !e.allow_no_hosts {
            return (Outcome::Failed, Some(why), true);
        }
        if limit_empty {
            // ansible-playbook exits 1 here, having run nothing: allowed.
            return (Outcome::Succeeded, None, false);
        }
    }
    if e.exit_code == Some(0) {
        return (Outcome::Succeeded, None, false);
    }
    if let Some(mark) = &e.events.permanent {
        let why = mark.reason.clone().unwrap_or_else(|| describe_failure(e.events, e.log, e.exit_code));
        let error = format!("{why} (marked permanent by task '{}' on {})", mark.task, mark.host);
        return (Outcome::Failed, Some(error), true);
    }
    (Outcome::Failed, Some(describe_failure(e.events, e.log, e.exit_code)), false)
}

/// "no hosts matched: ..." if the run skipped work for want of hosts.
fn no_hosts(e: &Ending<'_>, limit_empty: bool) -> Option<String> {
    let hint = "(set allow_no_hosts = true on the rule if that is expected)";
    if limit_empty {
        let limit = e.limit.unwrap_or_default();
        return Some(format!("no hosts matched: the inventory has no host for --limit={limit:?} {hint}"));
    }
    let plays: Vec<String> =
        e.events.empty_plays.iter().map(|p| format!("play {:?} (hosts: {})", p.play, p.hosts)).collect();
    (!plays.is_empty()).then(|| format!("no hosts matched: {} {hint}", plays.join(", ")))
}

/// ansible-playbook refuses to start when the inventory and `--limit` leave
/// no host at all (the callback plugin never loads, so only its error line
/// tells). Trusted only when it ran no task and failed, and only at the
/// start of a line, where no task output can put it.
fn limit_matched_nothing(e: &Ending<'_>) -> bool {
    const SAYS: [&str; 2] = ["leaves us with no hosts to target", "does not match any hosts"];
    e.limit.is_some()
        && e.exit_code.is_some_and(|c| c != 0)
        && e.events.tasks.is_empty()
        && e.log
            .lines()
            .any(|l| (l.starts_with("[ERROR]") || l.starts_with("ERROR!")) && SAYS.iter().any(|s| l.contains(s)))
}

/// A one-line reason for a failed run: the hosts that could not be reached
/// (retrying may help, so they are named), else the last failed task, else
/// Ansible's own error line, else the exit code.
fn describe_failure(events: &Events, log: &str, exit_code: Option<i32>) -> String {
    let tasks = &events.tasks;
    let unreachable: Vec<&TaskResult> = tasks.iter().filter(|t| t.status == TaskStatus::Unreachable).collect();
    if let Some(t) = unreachable.last() {
        let mut hosts: Vec<&str> = unreachable.iter().map(|t| t.host.as_str()).collect();
        hosts.dedup();
        let msg = t.msg.as_deref().unwrap_or("no message");
        let which = if hosts.len() == 1 { "host" } else { "hosts" };
        return format!("{which} {} unreachable (task '{}'): {msg}", hosts.join(", "), t.task);
    }
    if let Some(t) = tasks.iter().rev().find(|t| t.status == TaskStatus::Failed) {
        let msg = t.msg.as_deref().unwrap_or("no message");
        return format!("task '{}' failed on {}: {msg}", t.task, t.host);
    }
    let code = match exit_code {
        Some(c) => format!("exit code {c}"),
        None => "killed".to_string(),
    };
    match log.lines().find(|l| l.starts_with("[ERROR]") || l.starts_with("ERROR!")) {
        Some(line) => format!("ansible-playbook failed ({code}): {}", line.trim()),
        None => format!("ansible-playbook failed ({code})"),
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EmptyPlay, Permanent};

    fn task(host: &str, name: &str, status: TaskStatus, msg: &str) -> TaskResult {
        TaskResult {
            host: host.into(),
            play: "p".into(),
            task: name.into(),
            status,
            msg: Some(msg.into()),
            duration_ms: Some(1),
        }
    }

    fn ending<'a>(exit_code: i32, events: &'a Events, log: &'a str) -> Ending<'a> {
        Ending {
            exit_code: Some(exit_code),
            stopped: None,
            timeout: Duration::from_secs(3),
            supervisor_err: "",
            log,
            events,
            limit: None,
            allow_no_hosts: false,
        }
    }

    #[test]
    fn no_hosts_is_a_permanent_failure_unless_allowed() {
        let events = Events {
            empty_plays: vec![EmptyPlay { play: "publish".into(), hosts: "compose".into() }],
            ..Default::default()
        };
        let (outcome, error, permanent) = verdict(&ending(0, &events, ""));
        assert_eq!((outcome, permanent), (Outcome::Failed, true));
        assert!(error.unwrap().starts_with("no hosts matched: play \"publish\" (hosts: compose)"));
        let allowed = Ending { allow_no_hosts: true, ..ending(0, &events, "") };
        assert_eq!(verdict(&allowed), (Outcome::Succeeded, None, false));
    }

    #[test]
    fn a_limit_that_leaves_no_host_is_no_hosts_matched() {
        let events = Events::default();
        let log = "[WARNING]: Could not match supplied host pattern, ignoring: nope\n\
                   [ERROR]: Specified inventory, host pattern and/or --limit leaves us with no hosts to target.\n";
        let run = Ending { limit: Some("nope"), ..ending(1, &events, log) };
        let (outcome, error, permanent) = verdict(&run);
        assert_eq!((outcome, permanent), (Outcome::Failed, true));
        assert!(error.unwrap().starts_with("no hosts matched: the inventory has no host for --limit=\"nope\""));
        assert_eq!(verdict(&Ending { allow_no_hosts: true, ..run }), (Outcome::Succeeded, None, false));
        // The same words printed by a task are just output.
        let printed = "ok: [h] => {\n    \"msg\": \"[ERROR]: ... leaves us with no hosts to target\"\n}\n";
        let (outcome, _, permanent) = verdict(&Ending { limit: Some("nope"), ..ending(2, &events, printed) });
        assert_eq!((outcome, permanent), (Outcome::Failed, false));
    }

    #[test]
    fn the_playbook_can_mark_a_failure_permanent() {
        let mark = |reason: Option<&str>| Events {
            tasks: vec![task("h1", "flr", TaskStatus::Failed, "non-zero return code")],
            permanent: Some(Permanent { host: "h1".into(), task: "mark".into(), reason: reason.map(Into::into) }),
            ..Default::default()
        };
        let events = mark(Some("flr: error: outside the allowed roots"));
        let (outcome, error, permanent) = verdict(&ending(2, &events, ""));
        assert_eq!((outcome, permanent), (Outcome::Failed, true));
        assert_eq!(
            error.as_deref(),
            Some("flr: error: outside the allowed roots (marked permanent by task 'mark' on h1)")
        );
        let events = mark(None);
        let (_, error, _) = verdict(&ending(2, &events, ""));
        assert!(error.unwrap().starts_with("task 'flr' failed on h1: non-zero return code (marked permanent"));
        // A run that succeeds anyway is a success.
        assert_eq!(verdict(&ending(0, &events, "")), (Outcome::Succeeded, None, false));
    }

    #[test]
    fn unreachable_hosts_are_named_and_retryable() {
        let events = Events {
            tasks: vec![
                task("a", "t1", TaskStatus::Unreachable, "Connection refused"),
                task("b", "t1", TaskStatus::Unreachable, "Connection timed out"),
                task("c", "t1", TaskStatus::Ok, ""),
            ],
            ..Default::default()
        };
        let (outcome, error, permanent) = verdict(&ending(4, &events, ""));
        assert_eq!((outcome, permanent), (Outcome::Failed, false));
        assert_eq!(error.as_deref(), Some("hosts a, b unreachable (task 't1'): Connection timed out"));
    }

    #[test]
    fn stopped_and_spawn_failures_come_first() {
        let events = Events {
            permanent: Some(Permanent { host: "h".into(), task: "t".into(), reason: None }),
            ..Default::default()
        };
        let stopped = Ending { stopped: Some(Outcome::TimedOut), ..ending(143, &events, "") };
        assert_eq!(verdict(&stopped), (Outcome::TimedOut, Some("timed out after 3s".into()), false));
        let err = "relflow-supervise: cannot run /nope: No such file or directory\n";
        let spawn = Ending { supervisor_err: err, ..ending(127, &events, "") };
        let (outcome, error, _) = verdict(&spawn);
        assert_eq!(
            (outcome, error.as_deref()),
            (Outcome::SpawnFailed, Some("cannot run /nope: No such file or directory"))
        );
    }
}
