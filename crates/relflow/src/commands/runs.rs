//! `relflow runs list|show|log` (rerun, cancel and history: control.rs)

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use relflow_ansible::TaskResult;
use relflow_core::Config;
use relflow_store::{Cursor, RunDetail, RunFilter, RunStatus, RunStore};

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
        RunsCommand::Log { id, follow } => log(config, store, &id, follow).await,
        RunsCommand::Rerun { id, json } => super::control::rerun(config, store, &id, json.json).await,
        RunsCommand::Cancel { id, json } => super::control::cancel(store, &id, json.json).await,
        RunsCommand::Approve { id, json } => super::control::approve(config, store, &id, json.json).await,
        RunsCommand::Deny { id, reason, json } => {
            super::control::deny(config, store, &id, reason.as_deref(), json.json).await
        }
        RunsCommand::History { message_id, json } => super::control::history(store, &message_id, json.json).await,
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

/// A finished run's log from the store; a running one's from its live file
/// on this host, followed until the run ends with `follow`.
async fn log(config: &Config, store: &dyn RunStore, id: &str, follow: bool) -> Result<ExitCode> {
    use std::io::Write;
    let run = find(store, id).await?;
    if run.record.status != RunStatus::Running {
        print!("{}", run.log);
        return Ok(ExitCode::SUCCESS);
    }
    let logs = relflow_engine::RunLogs::new(&config.data_dir);
    let mut printed = 0;
    loop {
        let text = logs.read(&run.record.id).await.unwrap_or_default();
        if let Some(new) = text.get(printed..).filter(|t| !t.is_empty()) {
            print!("{new}");
            std::io::stdout().flush()?;
            printed = text.len();
        }
        let now = find(store, &run.record.id).await?;
        if now.record.status != RunStatus::Running {
            // The stored log is the whole output; print what the file had not shown yet.
            print!("{}", now.log.get(printed..).unwrap_or_default());
            return Ok(ExitCode::SUCCESS);
        }
        if !follow {
            if printed == 0 {
                eprintln!(
                    "run {} is running on {}; its live log is on that host (or use --follow)",
                    now.record.id, now.record.worker
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
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
        search: a.search,
        limit: a.limit,
        offset: a.offset,
        cursor: a
            .cursor
            .as_deref()
            .map(|c| {
                Cursor::parse(c)
                    .with_context(|| format!("--cursor {c:?} is not a cursor; pass the one a listing printed"))
            })
            .transpose()?,
    };
    let runs = store.list(&filter).await?;
    if let Some(last) = runs.last().filter(|_| a.limit != 0 && runs.len() == a.limit) {
        // On stderr, so `--json` output stays one JSON document.
        eprintln!("next page: --cursor {}", Cursor::after(last));
    }
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
            "{}  {:<10} {:<20} {:<24} attempt {} {:>7}  {}  {}",
            &r.id[..r.id.len().min(8)],
            r.status,
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.rule,
            r.attempt,
            took.unwrap_or_default(),
            r.subject,
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
    println!("subject    {}", r.subject);
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
        let took = t.duration_ms.map(|ms| format!("{:.1}s", ms as f64 / 1000.0)).unwrap_or_default();
        println!("  {:<12} {:<16} {took:>7}  {}{msg}", t.status.as_str(), t.host, t.task);
    }
    println!("(full output: relflow runs log {})", &r.id[..r.id.len().min(8)]);
}
