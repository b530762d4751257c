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
    worker.run(args.drain, shutdown).await;
    Ok(ExitCode::SUCCESS)
}
