//! A message's human summary line, from its own class (`Message.summary`
//! in fedora-messaging, which every Fedora schema package implements):
//! "bodhi: ralph commented on bodhi update FEDORA-2019-1a2b3c (karma: 1)".
//!
//! It is Python code of the installed package, so it runs in the venv's
//! Python; the message goes to it on stdin as data.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

use crate::SchemaSet;

const SCRIPT: &str = include_str!("summary.py");

/// Why no summary could be had.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The interpreter cannot be started.
    #[error("cannot run {python}: {source}")]
    Spawn {
        /// The interpreter.
        python: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The class raised, or printed nothing usable.
    #[error("the {class} class could not summarize this message: {message}")]
    Failed {
        /// The entry point name.
        class: String,
        /// Its last line of error output.
        message: String,
    },
}

/// The summary line of a message, when an installed class describes its
/// topic (`Ok(None)` when none does).
pub fn summary(
    set: &SchemaSet,
    python: &Path,
    topic: &str,
    headers: &Map<String, Value>,
    body: &Map<String, Value>,
) -> Result<Option<String>, SummaryError> {
    // The class that accepts the body, else the first of its topic: a
    // summary of a slightly off message is still worth showing.
    let class = match set.validate(topic, headers, body) {
        Ok(Some(name)) => name.to_owned(),
        Ok(None) => return Ok(None),
        Err(_) => set.entries[set.for_message(topic, headers)[0]].name.clone(),
    };
    let failed = |message: String| SummaryError::Failed { class: class.clone(), message };
    let mut child = Command::new(python)
        .args(["-I", "-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SummaryError::Spawn { python: python.to_path_buf(), source })?;
    let request = json!({"name": class, "topic": topic, "headers": headers, "body": body});
    if let Some(mut stdin) = child.stdin.take() {
        // A write error shows up as the child's failure below.
        let _ = stdin.write_all(request.to_string().as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(failed(stderr.trim().lines().last().unwrap_or("no output").to_owned()));
    }
    let printed: Value = serde_json::from_slice(&out.stdout).map_err(|e| failed(e.to_string()))?;
    // The line is built from the payload: no control character may reach
    // a terminal, and one line stays one line.
    let line =
        |s: &str| relflow_core::truncate(&relflow_core::escape_controls(s), relflow_core::subject::MAX_SUBJECT * 2);
    Ok(printed["summary"].as_str().map(line))
}
