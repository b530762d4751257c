//! `[backfill]`: where relflow fetches messages the bus lost.
//!
//! Fedora keeps every bus message in Datagrepper; `relflow backfill` reads
//! it (see `relflow_ingest::backfill`):
//!
//! ```toml
//! [backfill]
//! url = "https://apps.fedoraproject.org/datagrepper"   # the default
//! ```
//!
//! The automatic backfills of issue 18 (`on_gap`, `on_start`) are not built
//! yet, so those keys are refused rather than accepted and ignored.
//!
//! Everything fetched goes through the same intake as the bus (signature
//! check, dedupe), so a backfill that overlaps what was received queues
//! nothing twice.

use serde::{Deserialize, Serialize};

/// Fedora's public Datagrepper.
pub const FEDORA_DATAGREPPER: &str = "https://apps.fedoraproject.org/datagrepper";

/// `[backfill]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillConfig {
    /// Datagrepper's base URL (searched at `/v2/search`).
    pub url: String,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        BackfillConfig { url: FEDORA_DATAGREPPER.into() }
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
        let c = load("[backfill]\n").unwrap();
        assert_eq!(c.backfill.unwrap().url, super::FEDORA_DATAGREPPER);
        assert!(load("").unwrap().backfill.is_none());
        let bad = load("[backfill]\nurl = \"ftp://x\"\n").unwrap_err();
        assert!(bad.contains("must be an http:// or https:// URL"), "{bad}");
        let not_yet = load("[backfill]\non_gap = true\n").unwrap_err();
        assert!(not_yet.contains("on_gap"), "{not_yet}");
    }
}
