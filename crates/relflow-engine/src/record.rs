//! What the run store is told about a run, and what a playbook is given:
//! the one mapping from the runner's words to the store's and the settle
//! table's.

use relflow_ansible::{ExtraVars, LoopabullCompat, Outcome, RunInfo, RunResult};
use relflow_core::config::CompatConfig;
use relflow_core::Message;
use relflow_store::{RunOutcome, RunStatus, TaskCounts};

use crate::settle::RuleOutcome;

/// The store's status for a runner outcome.
pub fn status(o: Outcome) -> RunStatus {
    match o {
        Outcome::Succeeded => RunStatus::Succeeded,
        Outcome::Failed => RunStatus::Failed,
        Outcome::TimedOut => RunStatus::TimedOut,
        Outcome::Cancelled => RunStatus::Cancelled,
        Outcome::SpawnFailed => RunStatus::Error,
    }
}

/// How a finished run is recorded.
pub fn run_outcome(r: &RunResult) -> RunOutcome {
    RunOutcome {
        status: status(r.outcome),
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

/// How a run that never started is recorded (its playbook is missing, ...).
pub fn error_outcome(error: String) -> RunOutcome {
    RunOutcome {
        status: RunStatus::Error,
        exit_code: None,
        counts: TaskCounts::default(),
        tasks: serde_json::Value::Array(Vec::new()),
        log: String::new(),
        error: Some(error),
    }
}

/// What a finished run means for settling its message.
pub fn rule_outcome(r: &RunResult) -> RuleOutcome {
    let why = || r.error.clone().unwrap_or_default();
    match r.outcome {
        Outcome::Succeeded => RuleOutcome::Succeeded,
        Outcome::Cancelled => RuleOutcome::Interrupted,
        // ansible-playbook itself could not start: retrying the same command
        // will not find it either.
        Outcome::SpawnFailed => RuleOutcome::Permanent(why()),
        // No host matched, or the playbook marked the failure permanent.
        Outcome::Failed if r.permanent => RuleOutcome::Permanent(why()),
        Outcome::Failed | Outcome::TimedOut => RuleOutcome::Failed(why()),
    }
}

/// The extra vars DESIGN.md promises a playbook: exactly `msg`, `topic`,
/// `msg_id`, `headers`, `sent_at` and `relflow`; with `compat.loopabull`,
/// also the fixed fedmsg envelope names loopabull passed.
pub fn extra_vars(msg: &Message, rule: &str, run_id: &str, attempt: u32, compat: &CompatConfig) -> ExtraVars {
    let loopabull = compat.loopabull.then(|| LoopabullCompat {
        envelope: match msg.headers.get("fedmsg") {
            Some(serde_json::Value::Object(env)) => env.clone(),
            _ => serde_json::Map::new(),
        },
        msg_id_derived: msg.has_derived_id(),
    });
    ExtraVars {
        msg: msg.body.clone(),
        topic: msg.topic.clone(),
        msg_id: msg.id.clone(),
        headers: msg.headers.clone(),
        sent_at: msg.sent_at.map(|t| t.to_rfc3339()),
        relflow: RunInfo { run_id: run_id.to_owned(), rule: rule.to_owned(), attempt },
        msgs: None,
        loopabull,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runner_outcome_has_one_status_and_one_settle_meaning() {
        let cases = [
            (Outcome::Succeeded, false, RunStatus::Succeeded, RuleOutcome::Succeeded),
            (Outcome::Failed, false, RunStatus::Failed, RuleOutcome::Failed("why".into())),
            (Outcome::Failed, true, RunStatus::Failed, RuleOutcome::Permanent("why".into())),
            (Outcome::TimedOut, false, RunStatus::TimedOut, RuleOutcome::Failed("why".into())),
            (Outcome::Cancelled, false, RunStatus::Cancelled, RuleOutcome::Interrupted),
            (Outcome::SpawnFailed, false, RunStatus::Error, RuleOutcome::Permanent("why".into())),
        ];
        for (outcome, permanent, want_status, want_rule) in cases {
            let r = RunResult {
                outcome,
                exit_code: Some(2),
                log: "log".into(),
                tasks: Vec::new(),
                stats: Default::default(),
                error: Some("why".into()),
                permanent,
            };
            assert_eq!(run_outcome(&r).status, want_status, "{outcome:?}");
            assert_eq!(rule_outcome(&r), want_rule, "{outcome:?}");
        }
    }
}
