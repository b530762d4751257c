//! `relflow runs list|show|log`

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use relflow_ansible::TaskResult;
use relflow_core::Config;
use relflow_store::{RunDetail, RunFilter, RunStatus, RunStore};

use relflow_engine::open_store;

use crate::cli::{RunsCommand, RunsListArgs};

pub async fn run(config: &Config, cmd: RunsCommand) -> Result<ExitCode> {
    let store = open_store(config).await?;
    let store = store.as_ref();
    match cmd {
        RunsCommand::List(args) => {
            if let Some(rule) = &args.rule {
                known_rule(config, store, rule).await?;
            }
            list(store, args).await
        }
        RunsCommand::Show { id, json } => {
            let view = relflow_announce::view(store, find(store, &id).await?).await?;
            if json.json {
                super::print_json(&view)?;
            } else {
                show(&view.run);
                print!("{}", view.lineage);
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Log { id } => {
            print!("{}", find(store, &id).await?.log);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A `--rule` that names no configured rule and no recorded run is a typo,
/// not "no runs".
async fn known_rule(config: &Config, store: &dyn RunStore, rule: &str) -> Result<()> {
    if config.rules.iter().any(|r| r.name == rule) {
        return Ok(());
    }
    let filter = RunFilter { rule: Some(rule.to_owned()), ..Default::default() };
    if store.count(&filter).await? > 0 {
        return Ok(()); // a rule since removed from the config
    }
    let names: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
    bail!("no rule named {rule:?} in {} (rules: {})", config.path.display(), names.join(", "))
}

async fn find(store: &dyn RunStore, id: &str) -> Result<RunDetail> {
    store.get(id).await?.with_context(|| format!("no run with id {id:?} (see `relflow runs list`)"))
}

async fn list(store: &dyn RunStore, a: RunsListArgs) -> Result<ExitCode> {
    let status = match a.status.as_deref() {
        None => None,
        Some(s) => match RunStatus::parse(s) {
            Some(st) => Some(st),
            None => bail!("unknown status {s:?}; use one of: {}", RunStatus::ALL.map(RunStatus::as_str).join(", ")),
        },
    };
    let filter = RunFilter {
        topic: a.topic,
        rule: a.rule,
        status,
        message_id: a.message,
        since: match a.since {
            Some(d) => Some(
                relflow_core::ago(d)
                    .with_context(|| format!("--since {}: too long ago", humantime::format_duration(d)))?,
            ),
            None => None,
        },
        until: None,
        limit: a.limit,
        offset: a.offset,
    };
    let runs = store.list(&filter).await?;
    if a.json.json {
        super::print_json(&runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs");
    }
    for r in &runs {
        let took = r.finished_at.map(|f| format!("{:.1}s", (f - r.started_at).num_milliseconds() as f64 / 1000.0));
        println!(
            "{}  {:<10} {:<20} {:<24} attempt {} {:>7}  {}",
            &r.id[..r.id.len().min(8)],
            r.status,
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.rule,
            r.attempt,
            took.unwrap_or_default(),
            r.topic
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(d: &RunDetail) {
    let r = &d.record;
    println!("run        {}", r.id);
    println!("status     {}{}", r.status, r.exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default());
    println!("rule       {}", r.rule);
    println!("playbook   {}", r.playbook);
    println!("message    {} ({})", r.message_id, r.topic);
    println!("attempt    {}", r.attempt);
    println!("worker     {}", r.worker);
    println!("started    {}", r.started_at.to_rfc3339());
    if let Some(f) = r.finished_at {
        println!("finished   {}", f.to_rfc3339());
    }
    let c = r.counts;
    println!(
        "tasks      ok={} changed={} failed={} skipped={} unreachable={}",
        c.ok, c.changed, c.failed, c.skipped, c.unreachable
    );
    if let Some(e) = &r.error {
        println!("error      {e}");
    }
    // Recorded by this version's runner; older rows that do not parse show no tasks.
    let tasks: Vec<TaskResult> = serde_json::from_value(d.tasks.clone()).unwrap_or_default();
    for t in &tasks {
        let msg = t.msg.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
        println!("  {:<12} {:<16} {}{msg}", t.status.as_str(), t.host, t.task);
    }
    println!("(full output: relflow runs log {})", &r.id[..r.id.len().min(8)]);
}
