//! `relflow dry-run`: what would happen to these messages?

use std::process::ExitCode;

use anyhow::Result;
use relflow_core::{match_rules, Config};
use serde_json::json;

use crate::worker::extra_vars;

pub fn run(config: &Config, files: &[std::path::PathBuf], as_json: bool) -> Result<ExitCode> {
    let mut report = Vec::new();
    for file in files {
        let msg = super::read_message(config, file)?;
        let found = match_rules(&config.rules, &msg);
        let runs: Vec<_> = found
            .rules
            .iter()
            .map(|rule| {
                let playbook = config.playbook_path(rule, &msg.topic);
                json!({
                    "rule": rule.name,
                    "playbook": playbook.as_ref().map(|p| p.display().to_string()).ok(),
                    "playbook_error": playbook.as_ref().err().map(ToString::to_string),
                    "extra_vars": extra_vars(&msg, &rule.name, "dry-run", 1).to_json(),
                })
            })
            .collect();
        let errors: Vec<_> =
            found.errors.iter().map(|(rule, e)| json!({"rule": rule.name, "error": e.to_string()})).collect();
        report.push(
            json!({"file": file, "msg_id": msg.id, "topic": msg.topic, "runs": runs, "condition_errors": errors}),
        );
    }
    if as_json {
        super::print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for item in &report {
        println!(
            "{}: {} ({})",
            item["file"].as_str().unwrap_or("-"),
            item["topic"].as_str().unwrap_or(""),
            item["msg_id"].as_str().unwrap_or("")
        );
        let runs = item["runs"].as_array().map(Vec::as_slice).unwrap_or_default();
        if runs.is_empty() {
            println!("  no rule matches: the message would be acked as a no-op");
        }
        for run in runs {
            match (run["playbook"].as_str(), run["playbook_error"].as_str()) {
                (Some(p), _) => println!("  rule {} -> {p}", run["rule"]),
                (None, err) => println!("  rule {} -> cannot run: {}", run["rule"], err.unwrap_or("?")),
            }
            println!("  extra vars:\n{}", indent(&serde_json::to_string_pretty(&run["extra_vars"])?, 4));
        }
        for e in item["condition_errors"].as_array().map(Vec::as_slice).unwrap_or_default() {
            println!("  rule {}: condition error (no match): {}", e["rule"], e["error"].as_str().unwrap_or(""));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn indent(text: &str, by: usize) -> String {
    text.lines().map(|l| format!("{:by$}{l}", "")).collect::<Vec<_>>().join("\n")
}
