//! `relflow test`: the `[[rule.test]]` tables and playbook syntax checks,
//! run by `relflow_check::run_tests`; non-zero exit if any fails.

use std::process::ExitCode;

use anyhow::Result;
use relflow_core::Config;

pub fn run(config: &Config, json: bool) -> Result<ExitCode> {
    let report = relflow_check::run_tests(config);
    if json {
        super::print_json(&report)?;
    } else {
        print!("{report}");
    }
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
