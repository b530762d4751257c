//! `relflow dry-run`: what would happen to these messages? The report
//! (per-rule verdicts, runs, extra vars, dict-method traps) is
//! `relflow_check::MessageReport`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use relflow_check::MessageReport;
use relflow_core::Config;

pub fn run(config: &Config, files: &[PathBuf], as_json: bool, rules_only: bool) -> Result<ExitCode> {
    let mut reports = Vec::new();
    for file in files {
        let msg = super::read_message(config, file)?;
        reports.push(MessageReport::new(config, file.clone(), &msg, !rules_only));
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
