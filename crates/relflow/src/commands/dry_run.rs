//! `relflow dry-run`: what would happen to these messages?

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use relflow_core::{match_rules, Config, Message};
use serde::Serialize;

/// What one message file would cause.
#[derive(Debug, Serialize)]
struct MessageReport {
    file: PathBuf,
    msg_id: String,
    topic: String,
    runs: Vec<RunReport>,
    condition_errors: Vec<ConditionError>,
}

/// One run a rule would make.
#[derive(Debug, Serialize)]
struct RunReport {
    rule: String,
    playbook: Option<String>,
    playbook_error: Option<String>,
    extra_vars: serde_json::Value,
    /// With `[announce]`: what the run would announce and start.
    announces: Option<relflow_announce::Plan>,
}

#[derive(Debug, Serialize)]
struct ConditionError {
    rule: String,
    error: String,
}

impl MessageReport {
    fn new(config: &Config, file: PathBuf, msg: &Message) -> MessageReport {
        let found = match_rules(&config.rules, msg);
        let announce = relflow_engine::options::announce(config);
        let runs = found
            .rules
            .iter()
            .map(|rule| {
                let playbook = config.playbook_path(rule, &msg.topic);
                RunReport {
                    rule: rule.name.clone(),
                    playbook: playbook.as_ref().ok().map(|p| p.display().to_string()),
                    playbook_error: playbook.as_ref().err().map(ToString::to_string),
                    extra_vars: relflow_engine::extra_vars(msg, &rule.name, "dry-run", 1).to_json(),
                    announces: announce.as_ref().and_then(|a| relflow_announce::plan(a, &config.rules, rule, msg, "")),
                }
            })
            .collect();
        let condition_errors = found
            .errors
            .iter()
            .map(|(rule, e)| ConditionError { rule: rule.name.clone(), error: e.to_string() })
            .collect();
        MessageReport { file, msg_id: msg.id.clone(), topic: msg.topic.clone(), runs, condition_errors }
    }
}

impl fmt::Display for MessageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} ({})", self.file.display(), self.topic, self.msg_id)?;
        if self.runs.is_empty() {
            writeln!(f, "  no rule matches: the message would be acked as a no-op")?;
        }
        for run in &self.runs {
            match (&run.playbook, &run.playbook_error) {
                (Some(p), _) => writeln!(f, "  rule {:?} -> {p}", run.rule)?,
                (None, err) => writeln!(f, "  rule {:?} -> cannot run: {}", run.rule, err.as_deref().unwrap_or("?"))?,
            }
            if let Some(plan) = &run.announces {
                write!(f, "{plan}")?;
            }
            let vars = serde_json::to_string_pretty(&run.extra_vars).map_err(|_| fmt::Error)?;
            writeln!(f, "  extra vars:")?;
            for line in vars.lines() {
                writeln!(f, "    {line}")?;
            }
        }
        for e in &self.condition_errors {
            writeln!(f, "  rule {:?}: condition error (no match): {}", e.rule, e.error)?;
        }
        Ok(())
    }
}

pub fn run(config: &Config, files: &[PathBuf], as_json: bool) -> Result<ExitCode> {
    let mut reports = Vec::new();
    for file in files {
        let msg = super::read_message(config, file)?;
        reports.push(MessageReport::new(config, file.clone(), &msg));
    }
    if as_json {
        super::print_json(&reports)?;
    } else {
        for r in &reports {
            print!("{r}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
