//! Rules: which playbook runs for which messages.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::condition::{Condition, EvalError, Input, Outcome};
use crate::config::PlaybookSpec;
use crate::{Message, TopicPattern};

/// One validated rule from the configuration.
#[derive(Debug, Serialize)]
pub struct Rule {
    pub name: String,
    #[serde(serialize_with = "ser_display")]
    pub topic: TopicPattern,
    #[serde(serialize_with = "ser_condition")]
    pub when: Option<Condition>,
    /// Which file under the playbooks dir; see [`crate::Config::playbook_path`].
    pub playbook: PlaybookSpec,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How many times a failed run is retried before it is dead-lettered.
    pub retries: u32,
    pub inventory: Option<String>,
    pub limit: Option<String>,
    /// A run in which a play matches no host counts as done. Default false:
    /// such a run fails with "no hosts matched" and is dead-lettered at once,
    /// since relflow never re-runs a succeeded message and the work would
    /// be lost for good (a typo in a group name, a `limit` that matches
    /// nothing, an empty inventory).
    pub allow_no_hosts: bool,
    /// Rules with the same group never run at the same time.
    pub concurrency_group: Option<GroupSpec>,
    /// Its runs are announced when `[announce]` is configured (`announce = false` turns that off).
    pub announce: bool,
    /// Its events carry the triggering message's body (`announce_body = true`).
    pub announce_body: bool,
    /// `coalesce = { ... }`: messages with one key become one run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coalesce: Option<crate::config::stateful::Coalesce>,
    /// `join = { ... }`: one run once every expected topic arrived for a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<crate::config::stateful::Join>,
    /// `approval = { ... }`: its runs wait for an approver first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::config::Approval>,
    /// `[[rule.test]]`: what `relflow test` checks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<RuleTest>,
}

/// One `[[rule.test]]`: this message must match (or not), and if it matches
/// the playbook must get these extra vars.
#[derive(Debug, Clone, Serialize)]
pub struct RuleTest {
    /// Absolute (relative to the config file as written).
    pub message: PathBuf,
    pub expect: Expect,
    /// Dotted paths into the extra vars (`msg.compose_id`, `topic`) and the
    /// values they must have.
    pub vars: BTreeMap<String, serde_json::Value>,
}

/// `expect = "match"` or `"no-match"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    Match,
    NoMatch,
}

/// `concurrency_group = "compose"`, or `concurrency_group = { expr = "..." }`
/// to compute the group from the message (e.g. one group per release).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum GroupSpec {
    Fixed(String),
    Expr {
        #[serde(serialize_with = "ser_expr")]
        expr: Condition,
    },
}

fn ser_expr<S: serde::Serializer>(c: &Condition, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.source())
}

impl GroupSpec {
    /// The lock name for `msg`. An expression that cannot be evaluated on
    /// this message falls back to the expression's own text: all such
    /// messages then share one group, which is safe (they serialize) where
    /// the alternative, no group, could run two releases' work at once.
    pub fn group_for(&self, msg: &Message) -> String {
        match self {
            GroupSpec::Fixed(name) => name.clone(),
            GroupSpec::Expr { expr } => {
                let value = expr.evaluate_string(&Input::new(msg));
                format!("{}={}", expr.source(), value.unwrap_or_default())
            }
        }
    }
}

fn ser_display<S: serde::Serializer>(t: &TopicPattern, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

fn ser_condition<S: serde::Serializer>(c: &Option<Condition>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.serialize_some(c.source()),
        None => s.serialize_none(),
    }
}

/// What matching one message against all rules found.
#[derive(Debug, Default)]
pub struct Matches<'r> {
    /// The rules to run, in config order.
    pub rules: Vec<&'r Rule>,
    /// Rules whose topic matched but whose condition could not be evaluated
    /// (treated as no match). Worth a log line: the condition is probably wrong.
    pub errors: Vec<(&'r Rule, EvalError)>,
}

impl Rule {
    fn check(&self, msg: &Message, input: &mut Option<Input>) -> Result<bool, EvalError> {
        if !self.topic.matches(&msg.topic) {
            return Ok(false);
        }
        match &self.when {
            None => Ok(true),
            Some(cond) => cond.evaluate(input.get_or_insert_with(|| Input::new(msg))),
        }
    }
}

/// Every rule that applies to `msg`. One message may match several rules;
/// each becomes its own run.
pub fn match_rules<'r>(rules: &'r [Rule], msg: &Message) -> Matches<'r> {
    // Converting the payload for CEL costs more than matching topics, so it
    // is done once per message, and only if some topic matched.
    let mut input = None;
    let mut found = Matches::default();
    for rule in rules {
        match rule.check(msg, &mut input) {
            Ok(true) => found.rules.push(rule),
            Ok(false) => {}
            Err(e) => found.errors.push((rule, e)),
        }
    }
    found
}

/// Why one rule does or does not apply to one message: what `dry-run` and
/// `relflow test` show. Matching itself stays in [`match_rules`], which
/// does not look for the missing key.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub topic_matches: bool,
    /// `None` when the topic did not match (not evaluated) or there is no condition.
    pub condition: Option<Outcome>,
}

impl Verdict {
    pub fn is_match(&self) -> bool {
        self.topic_matches && matches!(self.condition, None | Some(Outcome::True))
    }
}

impl Rule {
    /// The [`Verdict`] of this rule on `msg`; `input` is converted once
    /// for all rules, as in [`match_rules`].
    pub fn explain(&self, msg: &Message, input: &mut Option<Input>) -> Verdict {
        let topic_matches = self.topic.matches(&msg.topic);
        let condition = match (&self.when, topic_matches) {
            (Some(cond), true) => Some(cond.outcome(input.get_or_insert_with(|| Input::new(msg)), msg)),
            _ => None,
        };
        Verdict { topic_matches, condition }
    }
}

/// The verdict of every rule on `msg`, in config order.
pub fn explain_rules<'r>(rules: &'r [Rule], msg: &Message) -> Vec<(&'r Rule, Verdict)> {
    let mut input = None;
    rules.iter().map(|rule| (rule, rule.explain(msg, &mut input))).collect()
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.condition, self.topic_matches) {
            (_, false) => f.write_str("topic does not match"),
            (None, true) => f.write_str("matches (topic; no condition)"),
            (Some(Outcome::True), true) => f.write_str("matches (topic; condition true)"),
            (Some(Outcome::False), true) => f.write_str("topic matches; condition false"),
            (Some(Outcome::Missing(key)), true) => write!(
                f,
                "topic matches; condition false: the message has no `{key}` (a missing key makes the whole \
                 condition false, even under `!`; ask with has({key}))"
            ),
            (Some(Outcome::Error(e)), true) => write!(f, "topic matches; condition error, so no match: {e}"),
        }
    }
}
