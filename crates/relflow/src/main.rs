//! The `relflow` binary: the CLI in front of relflow's crates.

mod cli;
mod commands;
mod systemd;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // The per-run supervisor is this same binary, re-executed. It must not
    // start a runtime or parse flags: it only babysits one ansible-playbook.
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new(relflow_ansible::SUPERVISE_ARG)) {
        relflow_ansible::supervise_main(std::env::args_os());
    }

    let cli = Cli::parse();
    if !cli.command.is_service() {
        // `relflow runs list | head`: a closed pipe ends a listing quietly,
        // as for any Unix tool. Services keep Rust's default (ignore it):
        // a worker must never die because its log reader went away.
        // SAFETY: called before any other thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    init_logging(&cli);
    if let Err(e) = relflow_queue::file::sigbus::survive() {
        tracing::warn!("cannot install the SIGBUS handler (a SIGBUS will kill the process silently): {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
    let default = match (&cli.command, cli.verbose) {
        (_, 1) => "debug",
        (_, v) if v >= 2 => "trace",
        // The worker's status lines are its output; other commands print
        // results on stdout and keep stderr for warnings.
        (Command::Worker(_) | Command::Bridge, _) => "info",
        (Command::Serve(_), _) => "info",
        _ => "warn",
    };
    // lapin logs every connection error it hands back to us, which relflow
    // reports itself, once and with what to do (RELFLOW_LOG brings them back).
    let filter =
        EnvFilter::try_from_env("RELFLOW_LOG").unwrap_or_else(|_| EnvFilter::new(format!("{default},lapin=off")));
    // Colour only for a person at a terminal: never into files, pipes or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match cli.log_format {
        // A message id with CR LF or ESC in it must not forge a line or reach the terminal.
        LogFormat::Text => builder
            .with_writer(move || relflow_core::ControlEscaper::new(std::io::stderr(), ansi))
            .with_target(false)
            .init(),
        LogFormat::Json => builder.with_writer(std::io::stderr).json().init(),
    }
}
