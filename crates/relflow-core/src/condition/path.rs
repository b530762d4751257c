//! Key paths: the `msg.a.b` a condition reads, found in its syntax tree, so
//! that `check` can ask sample messages whether the keys exist, and
//! `dry-run` can say which key a message lacked.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::Message;

/// The variable a path starts from. `topic` is a string, so it has no keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Root {
    Msg,
    Headers,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// `.name` or `["name"]`.
    Key(String),
    /// Any element: a comprehension variable (`builds.exists(b, b.nvr ...)`)
    /// or a literal index (`builds[0]`).
    Each,
}

/// A chain of keys a condition reads, e.g. `msg.update.builds[].nvr`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPath {
    pub root: Root,
    pub segments: Vec<Segment>,
    /// Read inside `has()`: the author expects it to be absent sometimes.
    pub tested: bool,
    /// Read under `!` or `!=`: where the key is missing, the condition is
    /// false, which is rarely what the author of a negation meant.
    pub negated: bool,
}

impl KeyPath {
    pub(crate) fn root(root: Root) -> KeyPath {
        KeyPath { root, segments: Vec::new(), tested: false, negated: false }
    }

    pub(crate) fn child(mut self, segment: Segment) -> KeyPath {
        self.segments.push(segment);
        self
    }

    /// The first `n` segments of this path (flags dropped).
    pub fn prefix(&self, n: usize) -> KeyPath {
        KeyPath {
            root: self.root,
            segments: self.segments[..n.min(self.segments.len())].to_vec(),
            ..Self::root(self.root)
        }
    }

    /// How many leading segments `msg` has: the whole length when the key
    /// exists (for `[]`, in at least one element).
    pub fn depth_in(&self, msg: &Message) -> usize {
        depth_in_map(self.root_map(msg), &self.segments)
    }

    /// The keys found at the end of this path in `msg` (in every element,
    /// for `[]`): the candidates for a did-you-mean.
    pub fn keys_in(&self, msg: &Message, into: &mut BTreeSet<String>) {
        keys_in_map(self.root_map(msg), &self.segments, into);
    }

    /// The values at the end of this path in `msg` (several for `[]`).
    pub fn values_in<'m>(&self, msg: &'m Message) -> Vec<&'m Value> {
        let mut out = Vec::new();
        if let Some((Segment::Key(k), rest)) = self.segments.split_first() {
            if let Some(v) = self.root_map(msg).get(k) {
                values_in(v, rest, &mut out);
            }
        }
        out
    }

    fn root_map<'m>(&self, msg: &'m Message) -> &'m Map<String, Value> {
        match self.root {
            Root::Msg => &msg.body,
            Root::Headers => &msg.headers,
        }
    }
}

fn depth_in_map(map: &Map<String, Value>, segments: &[Segment]) -> usize {
    match segments.split_first() {
        None => 0,
        Some((Segment::Key(k), rest)) => map.get(k).map_or(0, |v| 1 + depth(v, rest)),
        // Iterating a map gives its keys, which are strings: nothing further to read.
        Some((Segment::Each, _)) => 1,
    }
}

fn depth(value: &Value, segments: &[Segment]) -> usize {
    match (value, segments.first()) {
        (_, None) => 0,
        (Value::Object(map), _) => depth_in_map(map, segments),
        (Value::Array(items), Some(Segment::Each)) => {
            1 + items.iter().map(|item| depth(item, &segments[1..])).max().unwrap_or(0)
        }
        _ => 0,
    }
}

fn values_in<'m>(value: &'m Value, segments: &[Segment], out: &mut Vec<&'m Value>) {
    match (value, segments.split_first()) {
        (_, None) => out.push(value),
        (Value::Object(map), Some((Segment::Key(k), rest))) => {
            if let Some(v) = map.get(k) {
                values_in(v, rest, out);
            }
        }
        (Value::Array(items), Some((Segment::Each, rest))) => items.iter().for_each(|v| values_in(v, rest, out)),
        _ => {}
    }
}

/// The kind of a literal a path is compared with, as far as CEL equality
/// cares: numbers of any type compare by value; other types never equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Number,
    Bool,
}

impl Kind {
    /// The kind of a JSON value; `None` for null, lists and maps.
    pub fn of(v: &Value) -> Option<Kind> {
        match v {
            Value::String(_) => Some(Kind::String),
            Value::Number(_) => Some(Kind::Number),
            Value::Bool(_) => Some(Kind::Bool),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Bool => "a boolean",
        }
    }
}

/// `path == literal`, `path != literal` or `path in [literals]`: where the
/// message's value is of another kind, CEL says "not equal" without an
/// error, so `msg.new == "1"` is silently false on every koji message.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub path: KeyPath,
    pub literal: Kind,
    /// The comparison as written, for messages.
    pub text: String,
}

fn keys_in_map(map: &Map<String, Value>, segments: &[Segment], into: &mut BTreeSet<String>) {
    match segments.split_first() {
        None => into.extend(map.keys().cloned()),
        Some((Segment::Key(k), rest)) => {
            if let Some(v) = map.get(k) {
                keys_in(v, rest, into);
            }
        }
        Some((Segment::Each, _)) => {}
    }
}

fn keys_in(value: &Value, segments: &[Segment], into: &mut BTreeSet<String>) {
    match (value, segments.first()) {
        (Value::Object(map), _) => keys_in_map(map, segments, into),
        (Value::Array(items), Some(Segment::Each)) => {
            for item in items {
                keys_in(item, &segments[1..], into);
            }
        }
        _ => {}
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.root {
            Root::Msg => "msg",
            Root::Headers => "headers",
        })?;
        for s in &self.segments {
            match s {
                Segment::Key(k) if is_ident(k) => write!(f, ".{k}")?,
                Segment::Key(k) => write!(f, "[{k:?}]")?,
                Segment::Each => f.write_str("[]")?,
            }
        }
        Ok(())
    }
}

/// Whether `k` can be written as `.k` in CEL (otherwise it needs `["k"]`).
fn is_ident(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(body: Value) -> Message {
        Message::new("a.b", body.as_object().unwrap().clone(), "test").unwrap()
    }

    fn path(segments: &[&str]) -> KeyPath {
        let segs = segments.iter().map(|s| if *s == "[]" { Segment::Each } else { Segment::Key(s.to_string()) });
        KeyPath { segments: segs.collect(), ..KeyPath::root(Root::Msg) }
    }

    #[test]
    fn depth_counts_the_keys_a_message_has_and_lists_count_if_any_element_has_it() {
        let m = msg(json!({"update": {"builds": [{"nvr": "a"}, {"epoch": 0}], "title": "t"}}));
        assert_eq!(path(&["update", "builds", "[]", "nvr"]).depth_in(&m), 4);
        assert_eq!(path(&["update", "builds", "[]", "nvrr"]).depth_in(&m), 3);
        assert_eq!(path(&["update", "stauts"]).depth_in(&m), 1);
        assert_eq!(path(&["nosuch", "x"]).depth_in(&m), 0);
        assert_eq!(path(&["update", "title", "x"]).depth_in(&m), 2, "a string has no keys");

        let mut keys = BTreeSet::new();
        path(&["update", "builds", "[]"]).keys_in(&m, &mut keys);
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), ["epoch", "nvr"]);
    }

    #[test]
    fn paths_print_as_cel_would_read_them() {
        assert_eq!(path(&["update", "builds", "[]", "nvr"]).to_string(), "msg.update.builds[].nvr");
        assert_eq!(path(&["x-y"]).to_string(), "msg[\"x-y\"]");
    }
}
