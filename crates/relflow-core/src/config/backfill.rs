//! `[backfill]`: where relflow fetches messages the bus lost.
//!
//! Fedora keeps every bus message in Datagrepper; `relflow backfill` reads
//! it (see `relflow_ingest::backfill`), and the bridge can do it by itself:
//!
//! ```toml
//! [backfill]
//! url = "https://apps.fedoraproject.org/datagrepper"   # the default
//! on_gap = true        # a fedmsg gap (a jump in `i`) fetches the messages around it
//! on_start = "10m"     # at start, fetch the last 10 minutes (what a restart missed)
//! ```
//!
//! Everything fetched goes through the same intake as the bus (signature
//! check, dedupe), so a backfill that overlaps what was received queues
//! nothing twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Fedora's public Datagrepper.
pub const FEDORA_DATAGREPPER: &str = "https://apps.fedoraproject.org/datagrepper";

/// `[backfill]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillConfig {
    /// Datagrepper's base URL (searched at `/v2/search`).
    pub url: String,
    /// When the bridge sees a fedmsg gap, fetch the window around it.
    pub on_gap: bool,
    /// When the bridge starts, fetch this far back.
    #[serde(with = "humantime_serde::option")]
    pub on_start: Option<Duration>,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        BackfillConfig { url: FEDORA_DATAGREPPER.into(), on_gap: false, on_start: None }
    }
}

impl BackfillConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!("[backfill] url {:?} must be an http:// or https:// URL", self.url));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("playbooks")).unwrap();
        let path = dir.path().join("relflow.toml");
        std::fs::write(&path, format!("playbooks_dir = \"playbooks\"\n{text}")).unwrap();
        Config::load(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn backfill_section_has_defaults_and_refuses_mistakes() {
        let c = load("[backfill]\non_gap = true\non_start = \"10m\"\n").unwrap();
        let b = c.backfill.unwrap();
        assert_eq!(b.url, super::FEDORA_DATAGREPPER);
        assert!(b.on_gap);
        assert_eq!(b.on_start, Some(std::time::Duration::from_secs(600)));
        assert!(load("").unwrap().backfill.is_none());
        let bad = load("[backfill]\nurl = \"ftp://x\"\n").unwrap_err();
        assert!(bad.contains("must be an http:// or https:// URL"), "{bad}");
        let typo = load("[backfill]\non_gaps = true\n").unwrap_err();
        assert!(typo.contains("on_gaps"), "{typo}");
    }
}
