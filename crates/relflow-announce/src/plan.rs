//! `relflow dry-run`: which announcements a run of a rule would make, where
//! they would go, and which rules they would start in turn.

use std::fmt;

use chrono::Utc;
use relflow_core::{match_rules, Message, Rule};
use relflow_store::{RunOutcome, RunStatus, TaskCounts};
use serde::Serialize;

use crate::event::{EventKind, RunEvent, RunStart};
use crate::options::AnnounceOptions;

/// What one run would announce.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The `run.started` topic.
    pub started: String,
    /// The end topics, one of which it would announce.
    pub ends: Vec<String>,
    /// The buses they would go to (`amqp`, `fedmsg`); `queue` is in `triggers`.
    pub destinations: Vec<&'static str>,
    /// The depth its events would have.
    pub chain_depth: u32,
    /// Rules the events would start (onto the work queue).
    pub triggers: Vec<Trigger>,
}

/// The rules one event would start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    /// The event.
    pub event: EventKind,
    /// The rules it matches.
    pub rules: Vec<String>,
    /// Set when those runs would be refused for being too deep in a chain.
    pub refused: Option<String>,
}

/// What a run of `rule` for `msg` would announce; `None` when the rule does
/// not announce (`announce = false`).
pub fn plan(options: &AnnounceOptions, rules: &[Rule], rule: &Rule, msg: &Message, playbook: &str) -> Option<Plan> {
    if !rule.announce {
        return None;
    }
    let start = RunStart {
        run_id: "dry-run",
        rule: &rule.name,
        playbook,
        attempt: 1,
        worker: "dry-run",
        started_at: Utc::now(),
        msg,
        with_body: rule.announce_body,
    };
    let started = RunEvent::started(&start);
    let ends = [RunStatus::Succeeded, RunStatus::Failed, RunStatus::TimedOut, RunStatus::Cancelled];
    let mut events = vec![started.clone()];
    events.extend(ends.iter().map(|s| RunEvent::finished(&start, &outcome(*s), Utc::now())));
    let triggers = events.iter().filter_map(|e| trigger(options, rules, e)).collect();
    let mut destinations = Vec::new();
    if options.amqp.is_some() {
        destinations.push(crate::options::AMQP);
    }
    if options.fedmsg.is_some() {
        destinations.push(crate::options::FEDMSG);
    }
    Some(Plan {
        started: EventKind::Started.topic(&options.topic_prefix),
        ends: events[1..].iter().map(|e| e.event.topic(&options.topic_prefix)).collect(),
        destinations,
        chain_depth: started.chain_depth,
        triggers,
    })
}

fn outcome(status: RunStatus) -> RunOutcome {
    RunOutcome {
        status,
        exit_code: Some(if status == RunStatus::Succeeded { 0 } else { 2 }),
        counts: TaskCounts::default(),
        tasks: serde_json::Value::Array(Vec::new()),
        log: String::new(),
        error: (status != RunStatus::Succeeded).then(|| "dry-run".into()),
    }
}

fn trigger(options: &AnnounceOptions, rules: &[Rule], event: &RunEvent) -> Option<Trigger> {
    let new = event.to_new_event(&options.topic_prefix, Vec::new());
    let msg = crate::chain::new_message(&new);
    let matched: Vec<String> = match_rules(rules, &msg).rules.iter().map(|r| r.name.clone()).collect();
    (!matched.is_empty()).then(|| Trigger {
        event: event.event,
        rules: matched,
        refused: crate::chain::too_deep(&msg, options.max_chain_depth),
    })
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = if self.destinations.is_empty() { "no bus".to_owned() } else { self.destinations.join(", ") };
        writeln!(f, "  announces: {}, then one of {} (to {to})", self.started, self.ends.join(", "))?;
        for t in &self.triggers {
            let rules = t.rules.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(", ");
            match &t.refused {
                None => writeln!(
                    f,
                    "  run.{} would start rule {rules} (chain depth {})",
                    t.event.as_str(),
                    self.chain_depth + 1
                )?,
                Some(why) => {
                    writeln!(f, "  run.{} would be dead-lettered instead of starting {rules}: {why}", t.event.as_str())?
                }
            }
        }
        Ok(())
    }
}
