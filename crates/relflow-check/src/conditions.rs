//! Every condition evaluated against the sample messages of its topic.
//!
//! What compiling cannot know, a real message can show: a type mismatch
//! (`msg.build_id > "5"` on a message where `build_id` is an int), a
//! condition that gives no boolean, and a key no message of that topic
//! has (`msg.stauts`), which would make the rule silently never fire. The
//! first two are errors: the rule cannot work. An unseen key is a warning,
//! with the closest key the samples do have: the samples may simply be
//! older than the schema.

use std::collections::{BTreeSet, HashSet};

use relflow_core::condition::{Condition, Input, KeyPath, Kind, Outcome, Segment};
use relflow_core::{Config, Rule};
use serde::Serialize;

use relflow_schemas::{LoadError, SchemaSet};

use crate::playbooks::PlaybookCheck;
use crate::samples::{Sample, Samples};

/// What `relflow check` found beyond the config itself.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// How many sample messages there were in all.
    pub samples: usize,
    /// One entry per rule, in config order.
    pub rules: Vec<RuleCheck>,
    /// With `--playbooks`: one entry per playbook.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub playbooks: Vec<PlaybookCheck>,
    /// With `--playbooks`: playbook variables relflow's extra vars override.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadowed_vars: Vec<String>,
    /// The schema directory used, and how many classes it has; `None`
    /// when there is none (`relflow schemas import` was not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schemas: Option<SchemaDir>,
    /// A schema directory that cannot be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schema_errors: Vec<String>,
    /// Sample files that could not be used.
    pub sample_errors: Vec<String>,
    /// Patterns that match no file.
    pub sample_warnings: Vec<String>,
}

/// The schema directory `check` used.
#[derive(Debug, Serialize)]
pub struct SchemaDir {
    /// Where it is.
    pub dir: String,
    /// How many message classes it has.
    pub classes: usize,
}

/// One rule's condition on its samples.
#[derive(Debug, Serialize)]
pub struct RuleCheck {
    /// The rule's name.
    pub rule: String,
    /// Samples whose topic the rule's pattern matches.
    pub samples: usize,
    /// Of those, how many the rule matches.
    pub matched: usize,
    /// Whether the rule has a `when` at all.
    pub has_condition: bool,
    /// What makes the rule unable to work (type mismatches, non-boolean results).
    pub errors: Vec<String>,
    /// What deserves a look (unseen keys, negations of missing keys).
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// Everything that makes `check` fail.
    pub fn errors(&self) -> Vec<String> {
        let rules = self.rules.iter().flat_map(|r| r.errors.iter().cloned());
        let playbooks = self.playbooks.iter().filter_map(|p| p.error.as_ref().map(|e| format!("{}: {e}", p.name)));
        let schemas = self.schema_errors.iter().cloned();
        self.sample_errors.iter().cloned().chain(schemas).chain(rules).chain(playbooks).collect()
    }

    /// Everything worth a look that does not fail `check`.
    pub fn warnings(&self) -> Vec<String> {
        let rules = self.rules.iter().flat_map(|r| r.warnings.iter().cloned());
        self.sample_warnings.iter().cloned().chain(rules).chain(self.shadowed_vars.iter().cloned()).collect()
    }
}

/// Checks every rule's condition against the samples `config` names and
/// the schemas in `[schemas] dir` (and, with `playbooks`, syntax-checks
/// every playbook).
pub fn check(config: &Config, playbooks: bool) -> CheckReport {
    let samples = crate::samples::load(config);
    check_with(config, &samples, playbooks)
}

/// [`check`] with samples already loaded.
pub fn check_with(config: &Config, samples: &Samples, playbooks: bool) -> CheckReport {
    let (schemas, schema_errors) = match SchemaSet::load(config.schemas.dir()) {
        Ok(set) => (Some(set), Vec::new()),
        // No schemas imported: the schema checks are simply not made.
        Err(LoadError::NoIndex(_)) => (None, Vec::new()),
        Err(e) => (None, vec![e.to_string()]),
    };
    let mut rules: Vec<RuleCheck> = config.rules.iter().map(|rule| check_rule(rule, &samples.all)).collect();
    if let Some(set) = &schemas {
        for (report, rule) in rules.iter_mut().zip(&config.rules) {
            let of_topic: Vec<&Sample> = samples.all.iter().filter(|s| rule.topic.matches(&s.message.topic)).collect();
            let found = crate::schemas::schema_errors(rule, set, &of_topic, &report.errors);
            report.errors.extend(found);
        }
    }
    CheckReport {
        samples: samples.all.len(),
        rules,
        playbooks: if playbooks { crate::playbooks::syntax_check_all(config) } else { Vec::new() },
        shadowed_vars: if playbooks { crate::shadowing::shadowed_vars(config) } else { Vec::new() },
        schemas: schemas.map(|s| SchemaDir { dir: s.dir.display().to_string(), classes: s.entries.len() }),
        schema_errors,
        sample_errors: samples.errors.clone(),
        sample_warnings: samples.warnings.clone(),
    }
}

/// One rule against the samples whose topic it matches.
pub fn check_rule(rule: &Rule, all: &[Sample]) -> RuleCheck {
    let samples: Vec<&Sample> = all.iter().filter(|s| rule.topic.matches(&s.message.topic)).collect();
    let mut report = RuleCheck {
        rule: rule.name.clone(),
        samples: samples.len(),
        matched: 0,
        has_condition: rule.when.is_some(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let Some(cond) = &rule.when else {
        report.matched = samples.len();
        return report;
    };
    let mut seen_errors = HashSet::new();
    for s in &samples {
        match cond.outcome(&Input::new(&s.message), &s.message) {
            Outcome::True => report.matched += 1,
            Outcome::False | Outcome::Missing(_) => {}
            Outcome::Error(e) => {
                if seen_errors.insert(e.to_string()) {
                    report.errors.push(format!(
                        "rule {:?}: condition `{}` cannot be evaluated on {}: {e}",
                        rule.name,
                        cond.source(),
                        s.name
                    ));
                }
            }
        }
    }
    if !samples.is_empty() {
        report.errors.extend(kind_mismatches(rule, cond, &samples));
        report.warnings = key_warnings(rule, cond, &samples);
    }
    report
}

/// `msg.new == "1"` where every sample's `new` is a number: CEL compares
/// values of different types as unequal without an error, so the
/// condition is silently never (or, with `!=`, always) true.
fn kind_mismatches(rule: &Rule, cond: &Condition, samples: &[&Sample]) -> Vec<String> {
    let mut errors = Vec::new();
    for c in cond.comparisons() {
        let kinds: Vec<Kind> = samples.iter().flat_map(|s| c.path.values_in(&s.message)).filter_map(Kind::of).collect();
        if let Some(seen) = kinds.first().filter(|_| !kinds.contains(&c.literal)) {
            errors.push(format!(
                "rule {:?}: `{}` compares `{}` with {}, but the samples have {} there ({} value(s)): CEL finds values \
                 of different types never equal, so this comparison can never match; compare with {} instead",
                rule.name,
                c.text,
                c.path,
                c.literal.name(),
                seen.name(),
                kinds.len(),
                seen.name(),
            ));
        }
    }
    errors
}

/// Keys no sample has, and negations of keys some samples lack.
fn key_warnings(rule: &Rule, cond: &Condition, samples: &[&Sample]) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut reported = HashSet::new();
    let topics: BTreeSet<&str> = samples.iter().map(|s| s.message.topic.as_str()).collect();
    let topics = match topics.len() {
        1 => topics.into_iter().next().unwrap_or_default().to_owned(),
        n => format!("the {n} topics it matches"),
    };
    for path in cond.paths() {
        let depth = samples.iter().map(|s| path.depth_in(&s.message)).max().unwrap_or(0);
        if depth < path.segments.len() {
            let missing = path.prefix(depth + 1);
            if !reported.insert(missing.clone()) {
                continue;
            }
            let Segment::Key(key) = &path.segments[depth] else { continue };
            let mut keys = BTreeSet::new();
            for s in samples {
                path.prefix(depth).keys_in(&s.message, &mut keys);
            }
            let mut w = format!("rule {:?}: `{missing}`: no sample of {topics} has it", rule.name);
            if let Some(close) = closest(key, &keys) {
                w.push_str(&format!("; did you mean `{close}`?"));
            }
            if path.negated && !path.tested {
                w.push_str(&format!(" (and where it is missing, {})", negation_note(&missing)));
            }
            warnings.push(w);
        } else if path.negated && !path.tested && !guarded(cond, path) {
            let lacking = samples.iter().filter(|s| path.depth_in(&s.message) < path.segments.len()).count();
            if lacking > 0 {
                warnings.push(format!(
                    "rule {:?}: {lacking} of {} samples have no `{path}`: on those, {}",
                    rule.name,
                    samples.len(),
                    negation_note(path)
                ));
            }
        }
    }
    warnings
}

/// The negation trap, and what to write instead.
fn negation_note(path: &KeyPath) -> String {
    format!(
        "the negation does not make the condition true: a missing key makes the whole condition false, even under \
         `!`; write `!has({path}) || ...` if a message without it should match"
    )
}

/// Whether the condition also asks `has()` about this path.
pub(crate) fn guarded(cond: &Condition, path: &KeyPath) -> bool {
    cond.paths().iter().any(|p| p.tested && p.root == path.root && path.segments.starts_with(&p.segments))
}

pub(crate) fn closest<'a>(key: &str, keys: &'a BTreeSet<String>) -> Option<&'a str> {
    keys.iter()
        .map(|k| (strsim::jaro_winkler(k, key), k.as_str()))
        .filter(|(score, _)| *score >= 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = &self.schemas {
            writeln!(f, "schemas: {} message class(es) from {}", s.classes, s.dir)?;
        }
        writeln!(f, "conditions on {} sample message(s):", self.samples)?;
        for r in &self.rules {
            let what = match (r.has_condition, r.samples) {
                (false, _) => "no condition".to_owned(),
                (true, 0) => "no sample of its topic: compiled, not evaluated".to_owned(),
                (true, n) => format!("{} of {n} sample(s) match", r.matched),
            };
            writeln!(f, "  {:<24} {what}", r.rule)?;
        }
        if !self.playbooks.is_empty() {
            writeln!(f, "playbooks (ansible-playbook --syntax-check):")?;
            for p in &self.playbooks {
                writeln!(f, "  {:<24} {}", p.name, if p.error.is_none() { "ok" } else { "FAILED" })?;
            }
        }
        for w in self.warnings() {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
