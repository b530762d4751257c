//! A condition's key path (`msg.update.status`) walked through a body
//! schema: does the schema have that key, and of which type is it.
//!
//! Only what the schemas Fedora's packages ship use is followed: local
//! `$ref`s (`#/definitions/..`, `#/$defs/..`, `#anchor`), `allOf`,
//! `anyOf`, `oneOf`, `properties`, `patternProperties`,
//! `additionalProperties` and `items`. A key a schema lists nowhere is
//! unknown even where JSON Schema would allow extra keys: the publisher
//! promises only what it lists, and a typo must not pass for an extra.

use std::collections::BTreeSet;

use relflow_core::condition::{Kind, Segment};
use serde_json::Value;

/// What a schema says about a path.
#[derive(Debug, PartialEq)]
pub enum Lookup<'s> {
    /// The schema nodes the path ends at.
    Known(Vec<&'s Value>),
    /// The schema allows any key somewhere on the way: nothing to say.
    Open,
    /// Segment `at` names a key the schema does not list; `keys` are those
    /// it lists there (for a did-you-mean).
    Unknown {
        /// The index of the unknown segment.
        at: usize,
        /// The keys the schema has at that place.
        keys: BTreeSet<String>,
    },
}

/// `segments` (from `msg`) walked through `schema`.
pub fn lookup<'s>(schema: &'s Value, segments: &[Segment]) -> Lookup<'s> {
    let mut nodes = views(schema, schema);
    for (at, segment) in segments.iter().enumerate() {
        let mut next = Vec::new();
        let mut keys = BTreeSet::new();
        for node in &nodes {
            match step(node, segment) {
                Step::Into(children) => next.extend(children.into_iter().flat_map(|c| views(schema, c))),
                Step::Open => return Lookup::Open,
                Step::Lacks(listed) => keys.extend(listed),
            }
        }
        if next.is_empty() {
            return Lookup::Unknown { at, keys };
        }
        nodes = next;
    }
    Lookup::Known(nodes)
}

/// The kinds of value a schema node allows, as CEL comparisons care; `None`
/// when a node does not say (no `type`, no `enum`).
pub fn kinds(nodes: &[&Value]) -> Option<BTreeSet<KindName>> {
    let mut out = BTreeSet::new();
    for node in nodes {
        let named = match node.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => match node.get("enum") {
                Some(Value::Array(values)) => values.iter().map(type_name).collect(),
                _ => return None,
            },
        };
        out.extend(named.into_iter().map(KindName::from_schema));
    }
    Some(out)
}

/// A JSON Schema type, with the CEL kind a literal of it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KindName {
    /// `string`.
    String,
    /// `integer` or `number`.
    Number,
    /// `boolean`.
    Bool,
    /// `null`, `object` or `array`: never equal to a literal.
    Other(&'static str),
}

impl KindName {
    fn from_schema(t: &str) -> KindName {
        match t {
            "string" => KindName::String,
            "integer" | "number" => KindName::Number,
            "boolean" => KindName::Bool,
            "null" => KindName::Other("null"),
            "object" => KindName::Other("an object"),
            _ => KindName::Other("a list"),
        }
    }

    /// Whether a literal of `kind` can equal a value of this type.
    pub fn admits(self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (KindName::String, Kind::String) | (KindName::Number, Kind::Number) | (KindName::Bool, Kind::Bool)
        )
    }

    /// For messages: "a string", "null".
    pub fn name(self) -> &'static str {
        match self {
            KindName::String => Kind::String.name(),
            KindName::Number => Kind::Number.name(),
            KindName::Bool => Kind::Bool.name(),
            KindName::Other(name) => name,
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
    }
}

enum Step<'s> {
    Into(Vec<&'s Value>),
    Open,
    Lacks(Vec<String>),
}

fn step<'s>(node: &'s Value, segment: &Segment) -> Step<'s> {
    match segment {
        Segment::Key(key) => key_step(node, key),
        Segment::Each => match node.get("items") {
            Some(Value::Array(items)) => Step::Into(items.iter().collect()),
            Some(items @ Value::Object(_)) => Step::Into(vec![items]),
            _ if allows(node, "array") => Step::Open,
            _ => Step::Lacks(Vec::new()),
        },
    }
}

fn key_step<'s>(node: &'s Value, key: &str) -> Step<'s> {
    let properties = node.get("properties").and_then(Value::as_object);
    if let Some(child) = properties.and_then(|p| p.get(key)) {
        return Step::Into(vec![child]);
    }
    let extra =
        matches!(node.get("additionalProperties"), Some(Value::Object(_))) || node.get("patternProperties").is_some();
    match properties {
        _ if extra => Step::Open,
        Some(p) => Step::Lacks(p.keys().cloned().collect()),
        None if allows(node, "object") => Step::Open,
        None => Step::Lacks(Vec::new()),
    }
}

/// Whether a node's `type` allows `t` (a node without one allows all).
fn allows(node: &Value, t: &str) -> bool {
    match node.get("type") {
        Some(Value::String(s)) => s == t,
        Some(Value::Array(ts)) => ts.iter().any(|x| x == t),
        _ => true,
    }
}

/// `node` with its `$ref` followed and `allOf` / `anyOf` / `oneOf`
/// branches spread out: the alternatives a value there can match.
fn views<'s>(root: &'s Value, node: &'s Value) -> Vec<&'s Value> {
    let mut out = Vec::new();
    spread(root, node, &mut out, 0);
    out
}

fn spread<'s>(root: &'s Value, node: &'s Value, out: &mut Vec<&'s Value>, depth: usize) {
    // A cycle of `$ref`s would otherwise never end.
    if depth > 16 {
        return;
    }
    if let Some(target) = node.get("$ref").and_then(Value::as_str).and_then(|r| resolve(root, r)) {
        spread(root, target, out, depth + 1);
    }
    let mut branched = false;
    for combinator in ["allOf", "anyOf", "oneOf"] {
        for branch in node.get(combinator).and_then(Value::as_array).into_iter().flatten() {
            branched = true;
            spread(root, branch, out, depth + 1);
        }
    }
    let own = node.get("properties").is_some() || node.get("items").is_some() || node.get("type").is_some();
    if own || (!branched && node.get("$ref").is_none()) {
        out.push(node);
    }
}

/// A local reference: a JSON pointer (`#/definitions/build`) or an anchor
/// (`#task_info`, an `$anchor` or a draft-4 `id`).
fn resolve<'s>(root: &'s Value, reference: &str) -> Option<&'s Value> {
    let fragment = reference.strip_prefix('#')?;
    if fragment.is_empty() || fragment.starts_with('/') {
        return root.pointer(fragment);
    }
    find_anchor(root, fragment)
}

fn find_anchor<'s>(node: &'s Value, name: &str) -> Option<&'s Value> {
    match node {
        Value::Object(map) => {
            let named = |k: &str| map.get(k).and_then(Value::as_str);
            if named("$anchor") == Some(name)
                || [named("$id"), named("id")].iter().flatten().any(|id| id.strip_prefix('#') == Some(name))
            {
                return Some(node);
            }
            map.values().find_map(|v| find_anchor(v, name))
        }
        Value::Array(items) => items.iter().find_map(|v| find_anchor(v, name)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str) -> Vec<Segment> {
        p.split('.').map(|s| if s == "[]" { Segment::Each } else { Segment::Key(s.into()) }).collect()
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "update": {"$ref": "#/definitions/update"},
                "extra": {"type": "object"},
                "task": {"$ref": "#task"},
                "either": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {"id": {"type": "integer"}}}]},
            },
            "definitions": {
                "update": {"type": "object", "properties": {
                    "status": {"type": "string", "enum": ["testing", "stable"]},
                    "builds": {"type": "array", "items": {"type": "object", "properties": {"nvr": {"type": "string"}}}},
                }},
                "task": {"$anchor": "task", "type": "object", "properties": {"state": {"enum": [1, 2]}}},
            },
        })
    }

    #[test]
    fn keys_are_found_through_refs_items_anchors_and_branches() {
        let s = schema();
        let known = |p: &str| match lookup(&s, &path(p)) {
            Lookup::Known(nodes) => kinds(&nodes),
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(known("update.status"), Some([KindName::String].into()));
        assert_eq!(known("update.builds.[].nvr"), Some([KindName::String].into()));
        assert_eq!(known("task.state"), Some([KindName::Number].into()));
        assert_eq!(known("either.id"), Some([KindName::Number].into()));
        assert_eq!(lookup(&s, &path("extra.anything")), Lookup::Open, "an object without properties");
    }

    #[test]
    fn an_unlisted_key_is_unknown_with_the_keys_listed_there() {
        let s = schema();
        let Lookup::Unknown { at, keys } = lookup(&s, &path("update.stauts")) else { panic!() };
        assert_eq!(at, 1);
        assert!(keys.contains("status") && keys.contains("builds"), "{keys:?}");
        assert!(matches!(lookup(&s, &path("update.status.x")), Lookup::Unknown { at: 2, .. }), "a string has no keys");
    }
}
