//! `relflow audit export`, and the audit entries of CLI mutations.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use relflow_core::Config;
use relflow_engine::open_store;
use relflow_store::NewAudit;

use crate::cli::{AuditCommand, AuditFormat};

pub async fn run(config: &Config, cmd: AuditCommand) -> Result<ExitCode> {
    let AuditCommand::Export { format: AuditFormat::Jsonl, since } = cmd;
    let since = since.map(|d| chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default());
    let entries = open_store(config).await?.audit_log(since, 0).await?;
    let mut out = std::io::stdout().lock();
    for e in &entries {
        writeln!(out, "{}", serde_json::to_string(e)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes that the local user did `action` to `target`. The action already
/// happened, so a store that cannot take the entry is a warning, not an error.
pub async fn record(config: &Config, action: &str, target: &str) {
    let entry = NewAudit {
        who: local_user(),
        role: "cli".into(),
        action: action.into(),
        target: target.into(),
        peer: "cli".into(),
        outcome: "ok".into(),
    };
    let written = match open_store(config).await {
        Ok(store) => store.audit(&entry).await.map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = written {
        tracing::warn!("cannot write the audit log: {e:#}");
    }
}

/// `user@host`: $USER, else the uid owning this process.
pub(super) fn local_user() -> String {
    use std::os::unix::fs::MetadataExt;
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        std::fs::metadata("/proc/self").map(|m| format!("uid {}", m.uid())).unwrap_or_else(|_| "unknown".into())
    });
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{user}@{}", host.trim())
}
