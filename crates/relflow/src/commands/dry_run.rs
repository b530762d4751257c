//! `relflow dry-run`: what would happen to these messages? The report
//! (per-rule verdicts, runs, extra vars, dict-method traps) is
//! `relflow_check::MessageReport`; with imported schemas it also says the
//! message's class, whether it is valid, and the class's summary line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use relflow_check::MessageReport;
use relflow_core::Config;
use relflow_schemas::{LoadError, SchemaSet};

pub fn run(config: &Config, files: &[PathBuf], as_json: bool, rules_only: bool) -> Result<ExitCode> {
    let schemas = match SchemaSet::load(config.schemas.dir()) {
        Ok(set) => Some(set),
        Err(LoadError::NoIndex(_)) => None,
        Err(e) => {
            eprintln!("warning: {e}");
            None
        }
    };
    let mut reports = Vec::new();
    for file in files {
        let msg = super::read_message(config, file)?;
        let mut report = MessageReport::new(config, file.clone(), &msg, !rules_only);
        if let Some(set) = &schemas {
            report = report.with_schema(set, config.schemas.python(), &msg);
        }
        reports.push(report);
    }
    if as_json {
        super::print_json(&reports)?;
    } else {
        for r in &reports {
            print!("{r}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
