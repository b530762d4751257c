//! `relflow worker`

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use relflow_core::Config;
use relflow_engine::{Backends, Worker};

use crate::cli::WorkerArgs;

pub async fn run(mut config: Config, args: WorkerArgs) -> Result<ExitCode> {
    let concurrency = args.concurrency.unwrap_or(config.worker.concurrency).max(1);
    config.worker.concurrency = concurrency;
    config.worker.prefetch = args.prefetch.unwrap_or(config.worker.prefetch);
    let backends = Backends::open(&config, config.worker.prefetch_for(concurrency)).await?;
    let worker = Arc::new(Worker::new(Arc::new(config), backends, concurrency)?);
    let shutdown = super::shutdown_on_signal("finishing running playbooks, taking no new messages")?;
    crate::systemd::ready(&format!("taking work, {concurrency} run slot(s)"));
    crate::systemd::spawn_watchdog();
    Arc::clone(&worker).run(args.drain, shutdown).await;
    if let Some(why) = worker.fatal() {
        super::exit_stopped_worker(why);
    }
    if !args.drain {
        return Ok(ExitCode::SUCCESS);
    }
    let tally = worker.tally();
    println!("drained: {tally}");
    if tally.dead_lettered > 0 {
        eprintln!("error: {} message(s) dead-lettered; see `relflow dead-letters list`", tally.dead_lettered);
        return Ok(ExitCode::from(DEAD_LETTERED));
    }
    Ok(ExitCode::SUCCESS)
}

/// `worker --drain`'s exit status when it gave up on a message: not 1 (an
/// error), so a script can tell "ran, some failed" from "could not run".
pub const DEAD_LETTERED: u8 = 3;
