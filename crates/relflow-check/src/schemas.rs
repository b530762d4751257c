//! Every condition checked against the imported schemas of the topics its
//! rule's pattern can match (`relflow schemas import`).
//!
//! The samples show what some messages had; a schema says what every
//! message of a class has. So here a key no schema of those topics lists
//! is an error, not a warning: `msg.update.stauts` on a bodhi topic can
//! never be there. Two escapes keep real rules working: a key a sample of
//! the topic has is known (schemas lag behind their publishers), and a key
//! read inside `has()` is the author saying it may be absent.

use std::collections::{BTreeSet, HashSet};

use relflow_core::condition::{Condition, KeyPath, Root, Segment};
use relflow_core::Rule;
use relflow_schemas::fields::{kinds, lookup, KindName, Lookup};
use relflow_schemas::{Entry, SchemaSet};

use crate::samples::Sample;

/// The schema errors of one rule: unknown keys and type mismatches.
/// `reported`: the rule's errors so far; a comparison the samples already
/// showed to be of the wrong type is not reported twice.
pub(crate) fn schema_errors(rule: &Rule, set: &SchemaSet, samples: &[&Sample], reported: &[String]) -> Vec<String> {
    let Some(cond) = &rule.when else { return Vec::new() };
    let entries = set.for_pattern(&rule.topic).entries;
    if entries.is_empty() {
        return Vec::new();
    }
    let topics = describe(&entries);
    let mut errors = unknown_keys(rule, cond, &entries, samples, &topics);
    let mismatches = type_mismatches(rule, cond, &entries, &topics);
    errors.extend(
        mismatches
            .into_iter()
            .filter(|(text, _)| !reported.iter().any(|r| r.contains(&format!("`{text}` compares"))))
            .map(|(_, e)| e),
    );
    errors
}

fn unknown_keys(rule: &Rule, cond: &Condition, entries: &[&Entry], samples: &[&Sample], topics: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut reported = HashSet::new();
    for path in cond.paths().iter().filter(|p| p.root == Root::Msg && !p.tested && !crate::conditions::guarded(cond, p))
    {
        let Some((at, keys)) = unknown_everywhere(path, entries) else { continue };
        if samples.iter().any(|s| path.depth_in(&s.message) > at) {
            continue;
        }
        let missing = path.prefix(at + 1);
        if !reported.insert(missing.clone()) {
            continue;
        }
        let mut e = format!("rule {:?}: `{missing}`: no schema of {topics} has it", rule.name);
        if let Some(close) = path.segments.get(at).and_then(key).and_then(|k| crate::conditions::closest(k, &keys)) {
            e.push_str(&format!("; did you mean `{close}`?"));
        } else if !keys.is_empty() {
            e.push_str(&format!(" (it has {})", keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")));
        }
        errors.push(e);
    }
    errors
}

/// Where `path` leaves every schema, furthest in, and the keys the schemas
/// have there; `None` when some schema has it (or allows any key).
fn unknown_everywhere(path: &KeyPath, entries: &[&Entry]) -> Option<(usize, BTreeSet<String>)> {
    let mut furthest: Option<(usize, BTreeSet<String>)> = None;
    for entry in entries {
        match lookup(&entry.schema, &path.segments) {
            Lookup::Known(_) | Lookup::Open => return None,
            Lookup::Unknown { at, keys } => match &mut furthest {
                Some((f, k)) if *f == at => k.extend(keys),
                Some((f, _)) if *f > at => {}
                _ => furthest = Some((at, keys)),
            },
        }
    }
    furthest
}

/// `msg.update.karma == "1"` where every schema says `karma` is an integer.
/// Each as (the comparison's text, the error).
fn type_mismatches(rule: &Rule, cond: &Condition, entries: &[&Entry], topics: &str) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for c in cond.comparisons().iter().filter(|c| c.path.root == Root::Msg) {
        let mut allowed = BTreeSet::new();
        for entry in entries {
            match lookup(&entry.schema, &c.path.segments) {
                Lookup::Known(nodes) => match kinds(&nodes) {
                    Some(k) => allowed.extend(k),
                    None => return errors,
                },
                Lookup::Open => return errors,
                Lookup::Unknown { .. } => {}
            }
        }
        if !allowed.is_empty() && !allowed.iter().any(|k| k.admits(c.literal)) {
            let names: Vec<&str> = allowed.iter().map(|k: &KindName| k.name()).collect();
            errors.push((
                c.text.clone(),
                format!(
                "rule {:?}: `{}` compares `{}` with {}, but the schema of {topics} says it is {}: CEL finds values of \
                 different types never equal, so this comparison can never match",
                rule.name,
                c.text,
                c.path,
                c.literal.name(),
                names.join(" or "),
            ),
            ));
        }
    }
    errors
}

fn key(segment: &Segment) -> Option<&str> {
    match segment {
        Segment::Key(k) => Some(k),
        Segment::Each => None,
    }
}

/// `bodhi.update.comment (bodhi-messages 26.4.0)`, or how many topics.
fn describe(entries: &[&Entry]) -> String {
    let topics: BTreeSet<&str> = entries.iter().map(|e| e.topic.as_str()).collect();
    if topics.len() > 1 {
        return format!("the {} topics it can match", topics.len());
    }
    let e = entries[0];
    match (&e.package, &e.version) {
        (Some(p), Some(v)) => format!("{} ({p} {v})", e.topic),
        _ => e.topic.clone(),
    }
}
