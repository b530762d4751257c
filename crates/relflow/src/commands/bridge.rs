//! `relflow bridge`: the configured `[[source]]`s -> the work queue.
//!
//! Everything happens in `relflow-ingest`; this only opens the queue, wires
//! SIGTERM/Ctrl-C to a clean stop and prints a summary.

use std::process::ExitCode;

use anyhow::Result;
use relflow_core::Config;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

pub async fn run(config: Config) -> Result<ExitCode> {
    let queue = crate::backends::open_queue(&config, 1).await?;
    let shutdown = CancellationToken::new();
    let (sink, sources) = relflow_ingest::bridge(&config, queue, shutdown.clone())?;
    for s in &config.sources {
        tracing::info!(source = s.name(), "starting");
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping after the messages in hand"),
            _ = int.recv() => tracing::info!("interrupted: stopping after the messages in hand"),
        }
        on_signal.cancel();
    });
    let result = sources.await?;
    let s = sink.stats();
    tracing::info!(queued = s.queued, duplicates = s.duplicates, rejected = s.rejected, errors = s.errors, "bridge stopped");
    result?;
    Ok(ExitCode::SUCCESS)
}
