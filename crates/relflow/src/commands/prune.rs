//! `relflow prune [--dry-run]`: [retention] applied now.

use std::process::ExitCode;

use anyhow::Result;
use relflow_core::Config;
use relflow_engine::{open_queue, open_store, retention};

pub async fn run(config: &Config, dry_run: bool, json: bool) -> Result<ExitCode> {
    if !config.retention.is_set() {
        eprintln!("no [retention] is set: runs, logs and dead letters are kept forever (see `relflow prune --help`)");
    }
    let store = open_store(config).await?;
    let queue = open_queue(config, 1).await?;
    let report =
        retention::prune(store.as_ref(), queue.as_ref(), &config.retention, chrono::Utc::now(), dry_run).await?;
    if !dry_run {
        let target = format!("runs {:?}, logs {:?}, dead letters {:?}", report.runs, report.logs, report.dead_letters);
        super::audit::record(config, "prune", &target).await;
    }
    if json {
        super::print_json(&report)?;
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
