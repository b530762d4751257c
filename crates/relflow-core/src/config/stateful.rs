//! Stateful rules: `coalesce` (many messages with one key become one run)
//! and `join` (one run once every expected topic arrived for one key).
//!
//! ```toml
//! [[rule]]
//! name = "regen-repo"
//! topic = "org.fedoraproject.*.buildsys.tag"
//! playbook = "regen.yml"
//! coalesce = { key = "msg.tag", window = "30s", max = 500 }
//!
//! [[rule]]
//! name = "compose-tested"
//! topic = "org.fedoraproject.#"
//! playbook = "compose_tested.yml"
//! join = { key = "msg.compose_id", topics = ["org.fedoraproject.*.pungi.compose.status.change",
//!          "org.fedoraproject.*.openqa.job.complete"],
//!          count = { "org.fedoraproject.*.openqa.job.complete" = 3 }, timeout = "2h",
//!          on_timeout = "compose_incomplete.yml" }
//! ```
//!
//! Only the shape is checked here; the state lives in the run store and the
//! behaviour in relflow-engine's `stateful` module.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::TopicPattern;

/// `coalesce = { ... }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCoalesce {
    key: String,
    #[serde(with = "humantime_serde")]
    window: Duration,
    max: Option<usize>,
    #[serde(default)]
    mode: CoalesceMode,
}

/// Which messages of a window the run gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CoalesceMode {
    /// Every message, in arrival order (`msgs`).
    #[default]
    All,
    /// Only the newest: a newer message replaces the one waiting.
    Latest,
}

impl CoalesceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CoalesceMode::All => "all",
            CoalesceMode::Latest => "latest",
        }
    }
}

/// A validated `coalesce`.
#[derive(Debug, Serialize)]
pub struct Coalesce {
    /// A CEL expression over the message; messages with the same value share a window.
    #[serde(serialize_with = "ser_expr")]
    pub key: Condition,
    /// The window closes this long after its first message...
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// ... or once it holds this many messages.
    pub max: usize,
    pub mode: CoalesceMode,
}

/// Default `max`: a bound on one run's `msgs` even when none is written.
pub const DEFAULT_COALESCE_MAX: usize = 1000;

/// `join = { ... }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJoin {
    key: String,
    topics: Vec<String>,
    #[serde(default)]
    count: BTreeMap<String, u32>,
    #[serde(with = "humantime_serde")]
    timeout: Duration,
    on_timeout: Option<PathBuf>,
}

/// A validated `join`.
#[derive(Debug, Serialize)]
pub struct Join {
    /// A CEL expression over the message; messages with the same value join.
    #[serde(serialize_with = "ser_expr")]
    pub key: Condition,
    /// What must arrive: each pattern with how many messages (default 1).
    pub parts: Vec<JoinPart>,
    /// Counted from the first message of a key.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Run instead (with what arrived) when the timeout passes first; none:
    /// the join is dead-lettered with "join timed out".
    pub on_timeout: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct JoinPart {
    #[serde(serialize_with = "ser_pattern")]
    pub topic: TopicPattern,
    pub count: u32,
}

impl Join {
    /// The part a message on `topic` counts for: the first pattern it matches.
    pub fn part_of(&self, topic: &str) -> Option<&JoinPart> {
        self.parts.iter().find(|p| p.topic.matches(topic))
    }
}

fn ser_expr<S: serde::Serializer>(c: &Condition, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.source())
}

fn ser_pattern<S: serde::Serializer>(t: &TopicPattern, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

impl RawCoalesce {
    pub(crate) fn validate(self) -> Result<Coalesce, String> {
        let key = Condition::compile(&self.key).map_err(|e| format!("coalesce key: {e}"))?;
        if self.window.is_zero() {
            return Err("coalesce window must be more than 0s".into());
        }
        let max = self.max.unwrap_or(DEFAULT_COALESCE_MAX);
        if max == 0 {
            return Err("coalesce max must be at least 1".into());
        }
        Ok(Coalesce { key, window: self.window, max, mode: self.mode })
    }
}

impl RawJoin {
    pub(crate) fn validate(self) -> Result<Join, String> {
        let key = Condition::compile(&self.key).map_err(|e| format!("join key: {e}"))?;
        if self.topics.is_empty() {
            return Err("join topics must name at least one topic pattern".into());
        }
        if self.timeout.is_zero() {
            return Err("join timeout must be more than 0s".into());
        }
        if let Some(unknown) = self.count.keys().find(|k| !self.topics.contains(k)) {
            return Err(format!("join count names {unknown:?}, which is not one of its topics"));
        }
        if let Some(p) = &self.on_timeout {
            super::check_relative(p).map_err(|e| format!("join on_timeout: {e}"))?;
        }
        let mut parts = Vec::new();
        for t in &self.topics {
            let topic = TopicPattern::parse(t).map_err(|e| format!("join topic {t:?}: {e}"))?;
            let count = self.count.get(t).copied().unwrap_or(1);
            if count == 0 {
                return Err(format!("join count for {t:?} must be at least 1"));
            }
            parts.push(JoinPart { topic, count });
        }
        Ok(Join { key, parts, timeout: self.timeout, on_timeout: self.on_timeout })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(text: &str) -> Result<Join, String> {
        toml::from_str::<RawJoin>(text).map_err(|e| e.to_string())?.validate()
    }

    #[test]
    fn join_counts_default_to_one_and_must_name_a_topic() {
        let j = join("key = 'msg.id'\ntopics = ['a.b', 'a.c']\ncount = { 'a.c' = 3 }\ntimeout = '2h'").unwrap();
        assert_eq!(j.parts.iter().map(|p| p.count).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(j.part_of("a.c").map(|p| p.count), Some(3));
        let err = join("key = 'msg.id'\ntopics = ['a.b']\ncount = { 'a.x' = 3 }\ntimeout = '2h'").unwrap_err();
        assert!(err.contains("not one of its topics"), "{err}");
        let err = join("key = 'msg.id'\ntopics = ['a.b']\ntimeout = '1h'\non_timeout = '../x.yml'").unwrap_err();
        assert!(err.contains("on_timeout"), "{err}");
    }

    #[test]
    fn coalesce_needs_a_window_and_defaults_max() {
        let c: RawCoalesce = toml::from_str("key = 'msg.tag'\nwindow = '30s'\nmode = 'latest'").unwrap();
        let c = c.validate().unwrap();
        assert_eq!((c.max, c.mode), (DEFAULT_COALESCE_MAX, CoalesceMode::Latest));
        let c: RawCoalesce = toml::from_str("key = 'msg.tag'\nwindow = '0s'").unwrap();
        assert!(c.validate().unwrap_err().contains("window"));
    }
}
