//! `relflow bridge`: the configured `[[source]]`s -> the work queue.
//!
//! Everything happens in `relflow-ingest`; this only opens the queue, wires
//! SIGTERM/Ctrl-C to a clean stop and prints a summary.

use std::process::ExitCode;

use anyhow::Result;
use relflow_core::Config;

pub async fn run(config: Config) -> Result<ExitCode> {
    let sink = super::open_sink(&config).await?;
    let shutdown = super::shutdown_on_signal("stopping after the messages in hand")?;
    let sources = relflow_ingest::bridge(&config.sources, &config.ingest.listen, sink.clone(), shutdown.clone())?;
    for s in &config.sources {
        tracing::info!(source = s.name(), "starting");
    }
    super::backfill_on_start(&sink);
    crate::systemd::ready("bridging");
    crate::systemd::spawn_watchdog();
    let result = sources.await?;
    let s = sink.stats();
    tracing::info!(
        queued = s.queued,
        duplicates = s.duplicates,
        rejected = s.rejected,
        errors = s.errors,
        schema_invalid = s.schema_invalid,
        "bridge stopped"
    );
    result?;
    Ok(ExitCode::SUCCESS)
}
