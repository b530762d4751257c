//! A rule's approval gate and the store's retention: the two settings that
//! decide how long something waits or is kept.
//!
//! ```toml
//! [[rule]]
//! name = "push-stable"
//! approval = { approvers = ["releng", "alice"], expires = "24h" }
//!
//! [retention]            # each optional; unset keeps forever
//! runs = "90d"
//! logs = "30d"
//! dead_letters = "30d"
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `approval = { approvers = [...], expires = "24h" }`: a matching message
/// waits in `awaiting_approval` until one of `approvers` approves or denies
/// it, or `expires` passes (then it is dead-lettered, "approval expired").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Token names or token groups (`[[http.token]] groups`); a token of
    /// role approver or admin named here, or in a group named here, decides.
    pub approvers: Vec<String>,
    /// How long a run waits for a decision. Default 24h.
    #[serde(default = "default_expires", with = "humantime_serde")]
    pub expires: Duration,
}

fn default_expires() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl Approval {
    pub(crate) fn validate(self) -> Result<Approval, String> {
        if self.approvers.iter().all(|a| a.trim().is_empty()) {
            return Err("approval.approvers names nobody; list token names or groups".into());
        }
        if self.expires.is_zero() {
            return Err("approval.expires must be more than 0s".into());
        }
        Ok(self)
    }

    /// Whether a token called `name` in `groups` is one of the approvers
    /// (its role is checked by the API before this).
    pub fn allows(&self, name: &str, groups: &[String]) -> bool {
        self.approvers.iter().any(|a| a == name || groups.contains(a))
    }
}

/// `[retention]`: how long runs, their logs and dead letters are kept.
/// The worker and `relflow serve` prune older ones in batches; `relflow
/// prune` does it on demand. A run still running or awaiting approval is
/// never pruned.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Runs (with their logs) that started longer ago than this.
    #[serde(default, with = "humantime_serde")]
    pub runs: Option<Duration>,
    /// Logs of runs that started longer ago than this (the run stays).
    #[serde(default, with = "humantime_serde")]
    pub logs: Option<Duration>,
    /// Dead letters older than this.
    #[serde(default, with = "humantime_serde")]
    pub dead_letters: Option<Duration>,
}

impl RetentionConfig {
    /// Whether anything is ever pruned.
    pub fn is_set(&self) -> bool {
        self.runs.is_some() || self.logs.is_some() || self.dead_letters.is_some()
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        for (name, d) in [("runs", self.runs), ("logs", self.logs), ("dead_letters", self.dead_letters)] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(format!("retention.{name} must be more than 0s (leave it out to keep forever)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvers_are_names_or_groups() {
        let a = Approval { approvers: vec!["releng".into(), "alice".into()], expires: default_expires() };
        assert!(a.allows("alice", &[]));
        assert!(a.allows("bob", &["qa".into(), "releng".into()]));
        assert!(!a.allows("bob", &["qa".into()]));
        assert!(Approval { approvers: vec![" ".into()], expires: default_expires() }.validate().is_err());
    }

    #[test]
    fn retention_durations_read_as_people_write_them() {
        let r: RetentionConfig = toml::from_str("runs = \"90d\"\nlogs = \"30d\"").unwrap();
        assert_eq!(r.runs, Some(Duration::from_secs(90 * 86400)));
        assert_eq!(r.dead_letters, None);
        assert!(r.is_set() && r.validate().is_ok());
        assert!(!RetentionConfig::default().is_set());
        assert!(toml::from_str::<RetentionConfig>("run = \"1d\"").is_err(), "a typo is an error");
    }
}
