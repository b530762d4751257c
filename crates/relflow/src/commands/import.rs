//! `relflow import`: another tool's config as a relflow.toml on stdout.

use std::process::ExitCode;

use anyhow::{bail, Result};
use relflow_core::Config;

use crate::cli::ImportCommand;

pub fn run(cmd: ImportCommand) -> Result<ExitCode> {
    let ImportCommand::Loopabull { file } = cmd;
    if !Config::is_loopabull_yaml(&file) {
        bail!("{}: a loopabull config is a .yml or .yaml file", file.display());
    }
    // Loaded exactly as `--config FILE.yml` would be, so the TOML does what
    // the YAML does; the warnings become comments in it.
    let config = Config::load(&file)?;
    print!("{}", relflow_core::loopabull_import::to_toml(&config));
    Ok(ExitCode::SUCCESS)
}
