//! `[backfill]`: where relflow fetches messages the bus lost.
//!
//! Fedora keeps every bus message in Datagrepper; `relflow backfill` reads
//! it (see `relflow_ingest::backfill`):
//!
//! ```toml
//! [backfill]
//! url = "https://apps.fedoraproject.org/datagrepper"   # the default
//! on_gap = true        # a fedmsg gap is fetched as soon as it is seen
//! on_start = "10m"     # `relflow bridge` / `serve` fetch the last 10 minutes when they start
//! ```
//!
//! Both automatic backfills fetch what a fedmsg `[[source]]` would have
//! received (its `topics` prefixes): fedmsg is the bus that loses messages;
//! an AMQP source's durable queue keeps them.
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
    /// When a fedmsg source sees a gap in a producer's sequence, fetch the
    /// time between the messages around it, for that source's topics.
    pub on_gap: bool,
    /// When `relflow bridge` or `relflow serve` starts, fetch this much of
    /// the recent past (`"10m"`): what was sent while it was down.
    #[serde(with = "humantime_serde")]
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
        if self.on_start.is_some_and(|d| d.is_zero()) {
            return Err("[backfill] on_start must be longer than 0s (leave it out for no backfill at start)".into());
        }
        Ok(())
    }

    /// What deserves the operator's eye in an automatic backfill set up
    /// with these `sources` and dedupe window.
    pub fn warnings(&self, has_fedmsg_source: bool, dedupe_window: Duration) -> Vec<String> {
        let mut out = Vec::new();
        if (self.on_gap || self.on_start.is_some()) && !has_fedmsg_source {
            out.push(
                "[backfill] on_gap / on_start fetch what a fedmsg [[source]] would receive, and there is none: they do \
                 nothing"
                    .into(),
            );
        }
        if let Some(ago) = self.on_start.filter(|d| *d > dedupe_window) {
            out.push(format!(
                "[backfill] on_start ({}) is longer than [ingest] dedupe_window ({}): messages queued before the window \
                 are queued again at each start (rules that succeeded for them are still skipped)",
                humantime_serde::re::humantime::format_duration(ago),
                humantime_serde::re::humantime::format_duration(dedupe_window)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ingest::tests::load;

    #[test]
    fn backfill_section_has_defaults_and_refuses_mistakes() {
        let c = load("[backfill]\n").unwrap();
        assert_eq!(c.backfill.unwrap().url, super::FEDORA_DATAGREPPER);
        assert!(load("").unwrap().backfill.is_none());
        let bad = load("[backfill]\nurl = \"ftp://x\"\n").unwrap_err();
        assert!(bad.contains("must be an http:// or https:// URL"), "{bad}");
        let auto = load("[backfill]\non_gap = true\non_start = \"10m\"\n").unwrap();
        let b = auto.backfill.as_ref().unwrap();
        assert_eq!((b.on_gap, b.on_start), (true, Some(std::time::Duration::from_secs(600))));
        assert!(auto.warnings.iter().any(|w| w.contains("there is none")), "{:?}", auto.warnings);
        let zero = load("[backfill]\non_start = \"0s\"\n").unwrap_err();
        assert!(zero.contains("on_start must be longer than 0s"), "{zero}");
        assert!(load("[backfill]\non_start = \"soon\"\n").is_err());
    }
}
