//! `relflow check`: is this config going to work?

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use relflow_core::config::PlaybookSpec;
use relflow_core::redact::redact_url;
use relflow_core::Config;
use serde_json::json;

pub async fn run(path: &Path, json: bool, playbooks: bool) -> Result<ExitCode> {
    let mut config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            if json {
                super::print_json(&json!({"ok": false, "problems": [e.to_string()]}))?;
            } else {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut problems = problems(&config);
    // Conditions on sample messages, and playbook syntax: relflow-check.
    let rule_checks = relflow_check::check(&config, playbooks);
    problems.extend(rule_checks.errors());
    let inventories = relflow_engine::options::inventory_check(&config).run();
    problems.extend(inventories.problems);
    config.warnings.extend(inventories.warnings);
    // Addresses may carry a password: show them redacted, in text and JSON alike.
    let queue = config.queue.url.as_deref().map_or_else(|| "embedded (SQLite)".to_owned(), redact_url);
    let store = config.store.url.as_deref().map_or_else(|| "embedded (SQLite)".to_owned(), redact_url);
    if json {
        super::print_json(&json!({
            "ok": problems.is_empty(),
            "config": config.path,
            "playbooks_dir": config.playbooks_dir,
            "data_dir": config.data_dir,
            "queue": queue,
            "store": store,
            "rules": config.rules,
            "warnings": config.warnings,
            "translated": config.translated,
            "problems": problems,
            "rule_checks": rule_checks,
        }))?;
    } else {
        println!("config:        {}", config.path.display());
        println!("playbooks_dir: {}", config.playbooks_dir.display());
        println!("data_dir:      {}", config.data_dir.display());
        println!("queue:         {queue}");
        println!("store:         {store}");
        println!("{} rule(s):", config.rules.len());
        for rule in &config.rules {
            let playbook = match &rule.playbook {
                PlaybookSpec::File(p) => p.display().to_string(),
                PlaybookSpec::FromTopic(t) => format!("<topic via {t:?}>"),
            };
            println!("  {:<24} {} -> {}", rule.name, rule.topic, playbook);
            if let Some(when) = &rule.when {
                println!("  {:<24} when {}", "", when.source());
            }
        }
        for t in &config.translated {
            println!("translated: {t}");
        }
        print!("{rule_checks}");
        for w in &config.warnings {
            println!("warning: {w}");
        }
        for p in &problems {
            eprintln!("error: {p}");
        }
        if problems.is_empty() {
            println!("ok");
        }
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// What would make runs fail even though the config parsed.
fn problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if !config.playbooks_dir.is_dir() {
        problems.push(format!("playbooks_dir {} is not a directory", config.playbooks_dir.display()));
    }
    for rule in &config.rules {
        if let PlaybookSpec::File(_) = rule.playbook {
            // The topic only matters for topic-derived playbooks.
            if let Err(e) = config.playbook_path(rule, "") {
                problems.push(format!("rule {:?}: {e}", rule.name));
            }
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if relflow_ansible::find_program(&config.ansible.playbook_cmd, &path).is_none() {
        problems.push(format!(
            "ansible playbook_cmd {} not found (run scripts/setup.sh for a local venv or scripts/install.sh for a system one, or set [ansible] playbook_cmd)",
            config.ansible.playbook_cmd.display()
        ));
    }
    if let Some(cfg) = &config.ansible.config {
        if !cfg.is_file() {
            problems.push(format!("ansible config {} does not exist", cfg.display()));
        }
    }
    problems
}
