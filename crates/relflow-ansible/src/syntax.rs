//! `ansible-playbook --syntax-check`, for `relflow check --playbooks` and
//! `relflow test`: a playbook with broken YAML would otherwise only show up
//! as a failed run, retried and then dead-lettered, once a message comes.
//!
//! It runs the configured `ansible-playbook` with the same allow-listed
//! environment, `ANSIBLE_CONFIG` and working directory as a real run, so a
//! playbook passes here exactly when ansible would parse it for a run.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::runner::{RunnerConfig, DEFAULT_PATH, ENV_ALLOWED};

/// Why a playbook did not pass the syntax check.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SyntaxError {
    #[error("cannot start {program}: {message}")]
    Spawn { program: String, message: String },
    /// ansible-playbook's own words (its output, trimmed).
    #[error("{0}")]
    Invalid(String),
}

/// Checks `playbook` as a run in `cwd` with `inventory` would load it.
/// Blocks until ansible-playbook exits (a second or two).
pub fn syntax_check(
    cfg: &RunnerConfig,
    playbook: &Path,
    inventory: Option<&str>,
    cwd: &Path,
) -> Result<(), SyntaxError> {
    let mut env: BTreeMap<OsString, OsString> = BTreeMap::new();
    for name in ENV_ALLOWED.iter().copied().chain(cfg.env_passthrough.iter().map(String::as_str)) {
        if let Some(v) = std::env::var_os(name) {
            env.insert(name.into(), v);
        }
    }
    env.entry("PATH".into()).or_insert_with(|| DEFAULT_PATH.into());
    if let Some(c) = &cfg.ansible_config {
        env.insert("ANSIBLE_CONFIG".into(), c.into());
    }
    env.insert("ANSIBLE_NOCOLOR".into(), "1".into());
    let mut cmd = Command::new(&cfg.ansible_playbook);
    cmd.arg("--syntax-check");
    // `--opt=value` so a value starting with `-` cannot become an option.
    if let Some(inv) = inventory {
        cmd.arg(format!("--inventory={inv}"));
    }
    cmd.arg("--").arg(playbook).current_dir(cwd).env_clear().envs(env).stdin(Stdio::null());
    let out = cmd.output().map_err(|e| SyntaxError::Spawn {
        program: cfg.ansible_playbook.display().to_string(),
        message: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Err(SyntaxError::Invalid(text.trim().to_owned()))
}
