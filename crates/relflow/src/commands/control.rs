//! `relflow runs rerun|cancel|approve|deny|history`: thin wrappers over
//! relflow_engine::control (the HTTP API calls the same functions).

use std::process::ExitCode;

use anyhow::{bail, Result};
use relflow_core::Config;
use relflow_engine::control;
use relflow_store::RunStore;
use serde_json::json;

/// Who is asking, as the history records it: `user@host`.
fn caller() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!("{user}@{host} (cli)")
}

pub async fn rerun(config: &Config, store: &dyn RunStore, id: &str, json: bool) -> Result<ExitCode> {
    let sink = super::open_sink(config).await?;
    let req = control::rerun(store, &sink, id, &caller()).await?;
    if json {
        super::print_json(&json!({"rerun_of": req.run_id, "message_id": req.message_id, "rule": req.rule,
                                  "request": req.id}))?;
    } else {
        println!("queued a re-run of rule {} for message {} (re-run of {})", req.rule, req.message_id, req.run_id);
        println!("follow it with: relflow runs history {}", req.message_id);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn cancel(store: &dyn RunStore, id: &str, json: bool) -> Result<ExitCode> {
    let (req, new) = control::cancel(store, id, &caller()).await?;
    if json {
        super::print_json(&json!({"run_id": req.run_id, "cancel_requested": true, "already_requested": !new}))?;
    } else if new {
        println!("asked the worker running {} to cancel it; it stops within a few seconds", req.run_id);
    } else {
        println!("a cancel of {} was already requested; waiting for its worker", req.run_id);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn approve(config: &Config, store: &dyn RunStore, id: &str, json: bool) -> Result<ExitCode> {
    let sink = super::open_sink(config).await?;
    let req = control::approve(store, &sink, id, &caller()).await?;
    super::audit::record(config, "approve", &req.run_id).await;
    if json {
        super::print_json(&json!({"run_id": req.run_id, "status": "approved", "approved_by": req.by,
                                  "message_id": req.message_id, "rule": req.rule}))?;
    } else {
        println!("approved {}: rule {} runs for message {} as a new run", req.run_id, req.rule, req.message_id);
        println!("follow it with: relflow runs history {}", req.message_id);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn deny(
    config: &Config,
    store: &dyn RunStore,
    id: &str,
    reason: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let req = control::deny(store, id, &caller(), reason).await?;
    super::audit::record(config, "deny", &req.run_id).await;
    if json {
        super::print_json(&json!({"run_id": req.run_id, "status": "denied", "denied_by": req.by, "reason": reason}))?;
    } else {
        println!("denied {}: rule {} does not run for message {}", req.run_id, req.rule, req.message_id);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn history(store: &dyn RunStore, message_id: &str, json: bool) -> Result<ExitCode> {
    let entries = control::history(store, message_id).await?;
    if json {
        super::print_json(&entries)?;
    } else if entries.is_empty() {
        bail!("no runs or history for message {message_id:?} (see `relflow runs list`)");
    } else {
        for e in &entries {
            println!("{e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
