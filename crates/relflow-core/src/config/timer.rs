//! `[[timer]]`: a message on a cron schedule, for rules to match.
//!
//! ```toml
//! [[timer]]
//! name = "nightly-rawhide"
//! schedule = "0 5 * * *"          # 5-field cron
//! timezone = "UTC"                 # IANA name (default UTC)
//! catch_up = "latest"              # after downtime: skip | latest | all
//! max_catch_up = 10                # bound on "all"
//! body = { release = "rawhide" }   # optional static body
//! ```
//!
//! Only the shape is checked here; the slots are claimed in the run store
//! and queued by relflow-engine's `timers` module.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::schedule::{CatchUp, Schedule};

/// Every timer's topic is this, a dot, and its name.
pub const TIMER_TOPIC_PREFIX: &str = "relflow.timer";

/// Default `max_catch_up`.
pub const DEFAULT_MAX_CATCH_UP: usize = 10;

/// `[[timer]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimer {
    name: String,
    schedule: String,
    #[serde(default = "utc")]
    timezone: String,
    #[serde(default)]
    catch_up: CatchUp,
    #[serde(default = "default_max_catch_up")]
    max_catch_up: usize,
    #[serde(default)]
    body: Map<String, Value>,
}

fn utc() -> String {
    "UTC".into()
}

fn default_max_catch_up() -> usize {
    DEFAULT_MAX_CATCH_UP
}

/// A validated `[[timer]]`.
#[derive(Debug, Clone, Serialize)]
pub struct Timer {
    pub name: String,
    /// As written (`0 5 * * *`).
    pub schedule: String,
    pub timezone: String,
    pub catch_up: CatchUp,
    pub max_catch_up: usize,
    /// Static keys of every message's body.
    pub body: Map<String, Value>,
    #[serde(skip)]
    pub slots: Schedule,
}

/// The keys relflow sets in a timer message's body; a static body cannot
/// have them.
const OWN_KEYS: [&str; 3] = ["name", "scheduled_at", "fired_at"];

impl RawTimer {
    pub(crate) fn validate(self) -> Result<Timer, String> {
        let ok_word =
            !self.name.is_empty() && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok_word {
            return Err("a timer name is one topic word: letters, digits, `-` and `_` only".into());
        }
        crate::validate_topic(&format!("{TIMER_TOPIC_PREFIX}.{}", self.name)).map_err(|e| e.to_string())?;
        let slots = Schedule::parse(&self.schedule, &self.timezone)?;
        if self.max_catch_up == 0 {
            return Err("max_catch_up must be at least 1".into());
        }
        if let Some(own) = OWN_KEYS.iter().find(|k| self.body.contains_key(**k)) {
            return Err(format!("body cannot set `{own}`: relflow sets name, scheduled_at and fired_at"));
        }
        Ok(Timer {
            name: self.name,
            schedule: self.schedule,
            timezone: self.timezone,
            catch_up: self.catch_up,
            max_catch_up: self.max_catch_up,
            body: self.body,
            slots,
        })
    }
}

impl Timer {
    /// `relflow.timer.<name>`.
    pub fn topic(&self) -> String {
        format!("{TIMER_TOPIC_PREFIX}.{}", self.name)
    }

    /// The body of the message for the slot `scheduled_at`, fired at `fired_at`.
    pub fn message_body(&self, scheduled_at: DateTime<Utc>, fired_at: DateTime<Utc>) -> Map<String, Value> {
        let mut body = self.body.clone();
        body.insert("name".into(), self.name.clone().into());
        body.insert("scheduled_at".into(), rfc3339(scheduled_at).into());
        body.insert("fired_at".into(), rfc3339(fired_at).into());
        body
    }
}

/// RFC 3339 in UTC with a `Z`, to the second (a slot has no fraction).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Validates `raw`, refusing two timers with one name.
pub(crate) fn validate_all(raw: Vec<RawTimer>) -> Result<Vec<Timer>, String> {
    let mut timers: Vec<Timer> = Vec::new();
    for t in raw {
        let name = t.name.clone();
        let timer = t.validate().map_err(|e| format!("timer {name:?}: {e}"))?;
        if timers.iter().any(|other| other.name == timer.name) {
            return Err(format!("timer {name:?}: two timers have this name; names must be unique"));
        }
        timers.push(timer);
    }
    Ok(timers)
}

/// A warning for each timer whose topic no rule's topic pattern matches:
/// its messages would all be no-ops.
pub(crate) fn unmatched(timers: &[Timer], rules: &[crate::Rule]) -> Vec<String> {
    timers
        .iter()
        .filter(|t| !rules.iter().any(|r| r.topic.matches(&t.topic())))
        .map(|t| format!("timer {:?}: no rule's topic matches {}, so its messages will be no-ops", t.name, t.topic()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timers(text: &str) -> Result<Vec<Timer>, String> {
        #[derive(Deserialize)]
        struct T {
            timer: Vec<RawTimer>,
        }
        validate_all(toml::from_str::<T>(text).map_err(|e| e.to_string())?.timer)
    }

    #[test]
    fn defaults_and_the_message_body() {
        let t = timers("[[timer]]\nname = 'nightly'\nschedule = '0 5 * * *'\nbody = { release = 'rawhide' }\n")
            .unwrap()
            .remove(0);
        assert_eq!((t.timezone.as_str(), t.catch_up, t.max_catch_up), ("UTC", CatchUp::Latest, 10));
        assert_eq!(t.topic(), "relflow.timer.nightly");
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let body = t.message_body(at("2026-12-01T05:00:00Z"), at("2026-12-01T05:00:00.250Z"));
        assert_eq!(
            Value::Object(body),
            serde_json::json!({"release": "rawhide", "name": "nightly", "scheduled_at": "2026-12-01T05:00:00Z",
                               "fired_at": "2026-12-01T05:00:00.250Z"})
        );
    }

    #[test]
    fn bad_timers_are_refused_with_the_reason() {
        let err = |text: &str| timers(text).unwrap_err();
        let two = err("[[timer]]\nname = 'a'\nschedule = '* * * * *'\n[[timer]]\nname = 'a'\nschedule = '0 * * * *'\n");
        assert!(two.contains("timer \"a\": two timers have this name"), "{two}");
        assert!(err("[[timer]]\nname = 'a.b'\nschedule = '* * * * *'\n").contains("one topic word"));
        assert!(err("[[timer]]\nname = 'a'\nschedule = 'daily'\n").contains("has 1 field(s)"));
        assert!(err("[[timer]]\nname = 'a'\nschedule = '* * * * *'\ntimezone = 'Mars/Olympus'\n").contains("IANA"));
        let catch_up = err("[[timer]]\nname = 'a'\nschedule = '* * * * *'\ncatch_up = 'newest'\n");
        assert!(catch_up.contains("unknown variant `newest`, expected one of `skip`, `latest`, `all`"), "{catch_up}");
        assert!(err("[[timer]]\nname = 'a'\nschedule = '* * * * *'\nmax_catch_up = 0\n").contains("at least 1"));
        let own = err("[[timer]]\nname = 'a'\nschedule = '* * * * *'\nbody = { fired_at = 'x' }\n");
        assert!(own.contains("cannot set `fired_at`"), "{own}");
    }
}
