//! `relflow schemas import` (see relflow_schemas::import).

use std::process::ExitCode;

use anyhow::Result;
use relflow_core::Config;

use crate::cli::SchemasCommand;

pub fn run(config: &Config, cmd: SchemasCommand) -> Result<ExitCode> {
    let SchemasCommand::Import { python, dir, json } = cmd;
    let python = python.as_deref().unwrap_or(config.schemas.python());
    let dir = dir.as_deref().unwrap_or(config.schemas.dir());
    let report = relflow_schemas::import(python, dir)?;
    if json.json {
        super::print_json(&report)?;
    } else {
        print!("{report}");
    }
    // No class at all is almost always the wrong Python: say so by failing.
    if report.classes == 0 {
        eprintln!(
            "error: {} has no fedora-messaging schema package installed (pip install bodhi-messages ...; see \
             docs/schemas.md)",
            python.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
