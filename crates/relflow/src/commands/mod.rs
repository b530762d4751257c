//! One module per subcommand; each returns the process exit code.

mod audit;
mod backfill;
mod bridge;
mod check;
mod control;
mod dead_letters;
mod dry_run;
mod import;
mod prune;
mod publish;
mod runs;
mod schemas;
mod serve;
mod status;
mod test;
mod timers;
mod verify;
mod worker;
mod workers;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use relflow_core::Config;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let config = || load_config(&cli.config);
    match cli.command {
        Command::Check(args) => check::run(&cli.config, args).await,
        Command::Test(json) => test::run(&config()?, json.json),
        Command::Publish(args) => publish::run(&config()?, args).await,
        Command::DryRun { files, json, rules_only } => dry_run::run(&config()?, &files, json.json, rules_only),
        Command::Worker(args) => worker::run(config()?, args).await,
        Command::Runs(cmd) => runs::run(&config()?, cmd).await,
        Command::DeadLetters(cmd) => dead_letters::run(&config()?, cmd).await,
        Command::Status(json) => status::run(&config()?, json.json).await,
        Command::Timers(cmd) => timers::run(config()?, cmd).await,
        Command::Workers(json) => workers::run(&config()?, json.json).await,
        Command::Audit(cmd) => audit::run(&config()?, cmd).await,
        Command::Prune { dry_run, json } => prune::run(&config()?, dry_run, json.json).await,
        Command::Backfill(args) => backfill::run(&config()?, &args).await,
        Command::Bridge => bridge::run(config()?).await,
        Command::Import(cmd) => import::run(cmd),
        Command::Schemas(cmd) => schemas::run(&config()?, cmd),
        Command::Verify { files, json } => verify::run(&config()?, &files, json.json),
        Command::Serve(args) => serve::run(config()?, args).await,
        Command::Supervise => anyhow::bail!("__supervise is internal: relflow starts it itself"),
    }
}

fn load_config(path: &Path) -> Result<Config> {
    let config = Config::load(path)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

/// A token cancelled on the first SIGTERM or SIGINT. The log line says what
/// happens next (`then`), and systemd hears that a stop is in progress.
fn shutdown_on_signal(then: &'static str) -> Result<tokio_util::sync::CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: {then}"),
            _ = int.recv() => tracing::info!("interrupted: {then}"),
            _ = on_signal.cancelled() => return,
        }
        crate::systemd::stopping(then);
        on_signal.cancel();
    });
    Ok(shutdown)
}

/// Ends the process once its worker stopped by itself (`worker` and
/// `serve`). It does not close the SQLite connections: the last one to
/// close checkpoints, writing the mapped -shm, which is a SIGBUS once the
/// file cannot be written; and after a caught SIGBUS this process's view
/// of the -shm is its own, not one to checkpoint from
/// (relflow_queue::file::sigbus). Dying here is as safe as a crash.
fn exit_stopped_worker(why: &str) -> ! {
    eprintln!("error: the worker stopped: {why}");
    std::process::exit(1);
}

/// The one door to the work queue (dedupe, metrics), for commands that
/// put messages on it.
async fn open_sink(config: &Config) -> Result<relflow_ingest::Sink> {
    sink_on(config, relflow_engine::open_queue(config, 1).await?)
}

/// The intake over a queue the command already opened.
fn sink_on(config: &Config, queue: std::sync::Arc<dyn relflow_queue::WorkQueue>) -> Result<relflow_ingest::Sink> {
    relflow_ingest::Sink::open(&relflow_engine::options::sink(config), queue)
}

/// `[backfill] on_start`, in the background, once the live sources run
/// (so nothing falls between the fetched past and the live stream).
fn backfill_on_start(sink: &relflow_ingest::Sink) {
    let Some(auto) = sink.auto_backfill().cloned() else { return };
    let sink = sink.clone();
    tokio::spawn(async move {
        match auto.start(&sink).await {
            Some(Ok(report)) => tracing::info!("on_start backfill: {report}"),
            // The live sources go on; `relflow backfill --since` can do it by hand.
            Some(Err(e)) => tracing::warn!("on_start backfill failed: {e}"),
            None => {}
        }
    });
}

/// Reads and decodes one fedmsg / fedora-messaging message file (`-`: stdin).
fn read_message(config: &Config, path: &Path) -> Result<relflow_core::Message> {
    let bytes = read_input(path)?;
    relflow_core::Message::decode(&bytes, "cli", config.max_message_bytes)
        .with_context(|| format!("{}: not a message", path.display()))
}

/// Reads a file, or stdin for `-`.
fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("cannot read stdin")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
