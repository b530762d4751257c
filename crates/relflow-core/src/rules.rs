//! Rules: which playbook runs for which messages.

use std::time::Duration;

use serde::Serialize;

use crate::condition::{Condition, EvalError, Input};
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
