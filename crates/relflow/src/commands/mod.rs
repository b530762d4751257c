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
mod serve;
mod status;
mod test;
mod timers;
mod verify;
mod worker;

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
        Command::Audit(cmd) => audit::run(&config()?, cmd).await,
        Command::Prune { dry_run, json } => prune::run(&config()?, dry_run, json.json).await,
        Command::Backfill(args) => backfill::run(&config()?, &args).await,
        Command::Bridge => bridge::run(config()?).await,
        Command::Import(cmd) => import::run(cmd),
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

/// The one door to the work queue (dedupe, metrics), for commands that
/// put messages on it.
async fn open_sink(config: &Config) -> Result<relflow_ingest::Sink> {
    sink_on(config, relflow_engine::open_queue(config, 1).await?)
}

/// The intake over a queue the command already opened.
fn sink_on(config: &Config, queue: std::sync::Arc<dyn relflow_queue::WorkQueue>) -> Result<relflow_ingest::Sink> {
    relflow_ingest::Sink::open(&relflow_engine::options::sink(config), queue)
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
