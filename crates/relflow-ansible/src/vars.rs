//! The extra variables a playbook sees, and the vars file that carries them.
//!
//! A playbook gets exactly six top-level variables: `msg`, `topic`, `msg_id`,
//! `headers`, `sent_at` and `relflow`. The message body lives *under* `msg`, so
//! nothing in a payload can add or override a top-level variable (no
//! `ansible_connection` / `ansible_become_*` injection). `relflow` also holds
//! `topic`, `msg_id`, `headers` and `sent_at`, so a play whose own variables
//! shadow a top-level name can still reach relflow's value.
//!
//! With loopabull compatibility ([`LoopabullCompat`]) the fedmsg envelope
//! fields loopabull's fedmsg looper passed are top-level too, but only the
//! fixed names in [`COMPAT_NAMES`], tagged like every message string; and
//! `msg_id` is left out when the message had none, as loopabull did.
//!
//! # Which strings are tagged `!unsafe`, and why not quite all
//!
//! Every string from the message must be untrusted, so Ansible never renders
//! Jinja in it: a body string `{{ lookup('pipe', 'rm -rf ~') }}` is printed,
//! not run. The file is JSON-like flow YAML with `!unsafe` on string scalars,
//! keys included (`{"msg": {!unsafe "k/1": !unsafe "{{ x }}"}}`); ansible-core
//! 2.19 accepts tagged keys.
//!
//! Two ansible-core behaviours, both checked with real `ansible-playbook`,
//! shape the exact rule:
//!
//! * 2.19's `!unsafe` constructor re-runs YAML 1.1 implicit type resolution
//!   on a tagged scalar *as if it were unquoted*: `!unsafe ""` becomes
//!   `None`, `!unsafe "yes"` becomes `True`, `!unsafe "12"` becomes `12`, an
//!   ISO date becomes a `datetime`, `!unsafe "!"` is an error.
//! * Tagging the containers instead (`!unsafe {...}`, which 2.19 propagates
//!   to everything inside) loses data on older ansible-core (2.16 constructs
//!   the tagged mapping shallowly and `msg` comes out as `{}`).
//!
//! So a string is tagged unless it consists only of characters that occur in
//! YAML 1.1's implicit resolvers (ASCII letters and digits, `. _ + - : ~ < =
//! ! & *`, space, tab, CR, LF; see [`is_inert`]). Such a string cannot hold
//! any template syntax (Jinja needs `{`, the `#jinja2:` override needs `#`),
//! so it is safe untagged, and written double-quoted it always stays a
//! string. Every other string contains a character no resolver accepts, so
//! tagging it can never change its type. Result, on old and new
//! ansible-core alike: every string that *could* be a template is untrusted,
//! and every string stays a string.
//!
//! We emit the YAML ourselves instead of going through a YAML library: it is
//! JSON-like flow style whose only subtle part is string escaping, spelled
//! out in [`quote`], and numbers, in [`yaml_number`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// What relflow itself tells the playbook about the run (`relflow.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub rule: String,
    pub attempt: u32,
}

/// The extra variables of one run: the message, split into the names
/// loopabull's playbooks already use, plus [`RunInfo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtraVars {
    /// The message body.
    pub msg: Map<String, Value>,
    pub topic: String,
    pub msg_id: String,
    pub headers: Map<String, Value>,
    pub sent_at: Option<String>,
    pub relflow: RunInfo,
    /// Stateful rules only (`coalesce`, `join`): the batch's messages.
    pub msgs: Option<Value>,
    /// `[compat] loopabull`: what loopabull-era playbooks also expect.
    #[serde(default)]
    pub loopabull: Option<LoopabullCompat>,
}

/// The fedmsg envelope fields loopabull's fedmsg looper passed as top-level
/// variables (beside `topic`, `msg` and `msg_id`). A fixed list: nothing
/// else from a message ever becomes a top-level name.
pub const COMPAT_NAMES: [&str; 8] =
    ["timestamp", "i", "username", "crypto", "signature", "certificate", "source_name", "source_version"];

/// loopabull compatibility for one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopabullCompat {
    /// The message's fedmsg envelope fields (`headers.fedmsg`); only those
    /// named in [`COMPAT_NAMES`] are passed, each only if present.
    pub envelope: Map<String, Value>,
    /// The message carried no id of its own (relflow derived one):
    /// `msg_id` is then undefined, as under loopabull.
    pub msg_id_derived: bool,
}

impl ExtraVars {
    /// The variables as plain JSON (for `relflow dry-run`): exactly the six
    /// top-level names, and `msgs` for a batch.
    pub fn to_json(&self) -> Value {
        let mut vars = serde_json::json!({
            "msg": self.msg,
            "topic": self.topic,
            "msg_id": self.msg_id,
            "headers": self.headers,
            "sent_at": self.sent_at,
            "relflow": {
                "run_id": self.relflow.run_id,
                "rule": self.relflow.rule,
                "attempt": self.relflow.attempt,
                "topic": self.topic,
                "msg_id": self.msg_id,
                "headers": self.headers,
                "sent_at": self.sent_at,
            },
        });
        if let (Some(compat), Value::Object(top)) = (&self.loopabull, &mut vars) {
            if compat.msg_id_derived {
                top.remove("msg_id");
            }
            top.extend(compat.names().map(|(k, v)| (k.to_owned(), v.clone())));
        }
        if let (Some(msgs), Value::Object(map)) = (&self.msgs, &mut vars) {
            map.insert("msgs".into(), msgs.clone());
        }
        vars
    }

    /// The text of the vars file passed as `--extra-vars=@FILE`: flow YAML
    /// in which every message string that could hold a template (values and
    /// keys, at any depth, plus topic, msg_id, headers, sent_at) is tagged
    /// `!unsafe`; see the module docs for the exact rule. `relflow.run_id` and
    /// `relflow.rule` get the same treatment. Only the six top-level names
    /// are fixed identifiers of ours.
    pub fn to_unsafe_yaml(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("# relflow extra vars: strings are !unsafe (never templated)\n{\"msg\": ");
        emit_map(&mut out, &self.msg);
        out.push_str(",\n\"topic\": ");
        emit_str(&mut out, &self.topic);
        if !self.loopabull.as_ref().is_some_and(|c| c.msg_id_derived) {
            out.push_str(",\n\"msg_id\": ");
            emit_str(&mut out, &self.msg_id);
        }
        out.push_str(",\n\"headers\": ");
        emit_map(&mut out, &self.headers);
        out.push_str(",\n\"sent_at\": ");
        self.emit_sent_at(&mut out);
        out.push_str(",\n\"relflow\": {\"run_id\": ");
        emit_str(&mut out, &self.relflow.run_id);
        out.push_str(", \"rule\": ");
        emit_str(&mut out, &self.relflow.rule);
        out.push_str(", \"attempt\": ");
        out.push_str(&self.relflow.attempt.to_string());
        out.push_str(", \"topic\": ");
        emit_str(&mut out, &self.topic);
        out.push_str(", \"msg_id\": ");
        emit_str(&mut out, &self.msg_id);
        out.push_str(", \"headers\": ");
        emit_map(&mut out, &self.headers);
        out.push_str(", \"sent_at\": ");
        self.emit_sent_at(&mut out);
        out.push('}');
        // The names are our fixed identifiers; only the values come from the message.
        for (name, value) in self.loopabull.iter().flat_map(LoopabullCompat::names) {
            out.push_str(",\n");
            quote(&mut out, name);
            out.push_str(": ");
            emit_value(&mut out, value);
        }
        if let Some(msgs) = &self.msgs {
            out.push_str(",\n\"msgs\": ");
            emit_value(&mut out, msgs);
        }
        out.push_str("}\n");
        out
    }

    fn emit_sent_at(&self, out: &mut String) {
        match &self.sent_at {
            Some(s) => emit_str(out, s),
            None => out.push_str("null"),
        }
    }
}

impl LoopabullCompat {
    /// The compat top-level variables: the fixed names the envelope has.
    pub fn names(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        COMPAT_NAMES.into_iter().filter_map(|name| Some((name, self.envelope.get(name)?)))
    }
}

fn emit_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&yaml_number(n)),
        Value::String(s) => emit_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                emit_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => emit_map(out, map),
    }
}

fn emit_map(out: &mut String, map: &Map<String, Value>) {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        emit_str(out, k);
        out.push_str(": ");
        emit_value(out, v);
    }
    out.push('}');
}

/// Writes a message string: `!unsafe "..."`, or just `"..."` if it is inert.
fn emit_str(out: &mut String, s: &str) {
    if !is_inert(s) {
        out.push_str("!unsafe ");
    }
    quote(out, s);
}

/// True if every character of `s` is one YAML 1.1's implicit resolvers use
/// (bool, int, float, null, timestamp, merge, value, and the `! & *`
/// placeholder one). Such a string holds no template syntax, and tagging it
/// `!unsafe` would make ansible-core 2.19 re-type it; see the module docs.
fn is_inert(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || "._+-:~<=!&* \t\r\n".contains(c))
}

/// Writes `s` as a YAML double-quoted scalar that PyYAML reads back verbatim.
///
/// * `"` and `\` are backslash-escaped.
/// * Line breaks (`\n`, `\r`, U+0085, U+2028, U+2029) are escaped, because a
///   literal line break inside a double-quoted scalar is *folded* into a space.
/// * Tab is escaped for readability (it would be legal).
/// * Everything PyYAML rejects as non-printable (outside `\x09 \x0A \x0D
///   \x20-\x7E \x85 \xA0-\uD7FF \uE000-\uFFFD \U00010000-\U0010FFFF`) is
///   written as `\uXXXX`. Rust strings never hold surrogates, so the BMP
///   escape is always enough.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{85}' | '\u{2028}' | '\u{2029}' => push_u_escape(out, c),
            ' '..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' => out.push(c),
            c if (c as u32) >= 0x10000 => out.push(c),
            c => push_u_escape(out, c),
        }
    }
    out.push('"');
}

fn push_u_escape(out: &mut String, c: char) {
    out.push_str(&format!("\\u{:04X}", c as u32));
}

/// A JSON number as a YAML 1.1 scalar that PyYAML resolves to the same type.
///
/// Integers are written as is. PyYAML's float pattern wants a `.` and a signed
/// exponent (`1.0e+300`), while JSON (and serde_json) writes `1e300`, which
/// PyYAML would read as a *string*; so floats are normalised.
///
/// `n` keeps the text it was sent as (serde_json's `arbitrary_precision`), so
/// an integer of any size stays an integer and `-0` stays `-0` (Python reads
/// both as the `int` JSON meant); only a float's spelling is changed.
fn yaml_number(n: &Number) -> String {
    let text = n.to_string();
    if !text.contains(['.', 'e', 'E']) {
        return text;
    }
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text.as_str(), None),
    };
    let mut out = mantissa.to_string();
    if !out.contains('.') {
        out.push_str(".0");
    }
    if let Some(exp) = exponent {
        out.push('e');
        if !exp.starts_with(['+', '-']) {
            out.push('+');
        }
        out.push_str(exp);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(msg: Value) -> ExtraVars {
        ExtraVars {
            msg: msg.as_object().cloned().unwrap_or_default(),
            topic: "org.fedoraproject.prod.buildsys.build.state.change".into(),
            msg_id: "2024-abc".into(),
            headers: Map::new(),
            sent_at: None,
            relflow: RunInfo { run_id: "r1".into(), rule: "koji".into(), attempt: 1 },
            msgs: None,
            loopabull: None,
        }
    }

    #[test]
    fn a_batch_s_msgs_are_unsafe_too() {
        let mut v = vars(json!({"tag": "f44"}));
        v.msgs = Some(json!([{"tag": "{{ lookup('pipe', 'id') }}"}]));
        let yaml = v.to_unsafe_yaml();
        assert!(yaml.contains("\"msgs\": [{\"tag\": !unsafe "), "{yaml}");
        assert_eq!(v.to_json()["msgs"][0]["tag"], "{{ lookup('pipe', 'id') }}");
    }

    #[test]
    fn json_has_exactly_six_top_level_names() {
        let v = vars(json!({"ansible_connection": "bogus", "topic": "evil"})).to_json();
        let mut keys: Vec<_> = v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        keys.sort();
        assert_eq!(keys, ["headers", "msg", "msg_id", "relflow", "sent_at", "topic"]);
        assert_eq!(v["topic"], "org.fedoraproject.prod.buildsys.build.state.change");
        assert_eq!(v["msg"]["ansible_connection"], "bogus");
    }

    #[test]
    fn loopabull_compat_adds_only_the_fixed_envelope_names() {
        let mut v = vars(json!({}));
        let envelope = json!({"timestamp": 1.5, "username": "{{ x }}", "i": 3, "ansible_connection": "bogus"});
        v.loopabull = Some(LoopabullCompat { envelope: envelope.as_object().cloned().unwrap(), msg_id_derived: true });
        let j = v.to_json();
        let mut keys: Vec<_> = j.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        keys.sort();
        assert_eq!(keys, ["headers", "i", "msg", "relflow", "sent_at", "timestamp", "topic", "username"]);
        assert_eq!(j["relflow"]["msg_id"], "2024-abc", "relflow's own id stays under relflow");
        let y = v.to_unsafe_yaml();
        assert!(y.contains(",\n\"timestamp\": 1.5,\n\"i\": 3,\n\"username\": !unsafe \"{{ x }}\"}"), "{y}");
        assert_eq!(y.matches("\"msg_id\"").count(), 1, "only relflow.msg_id: {y}");
        assert!(!y.contains("ansible_connection"), "{y}");
    }

    #[test]
    fn strings_that_could_be_templates_are_tagged() {
        let y = vars(json!({"a/b": {"{{ k }}": ["x{", "yes", 1, true, null, "", "12"]}})).to_unsafe_yaml();
        assert!(
            y.contains(
                r#"{"msg": {!unsafe "a/b": {!unsafe "{{ k }}": [!unsafe "x{", "yes", 1, true, null, "", "12"]}},"#
            ),
            "{y}"
        );
        assert!(y.contains(r#""topic": "org.fedoraproject.prod.buildsys.build.state.change""#), "{y}");
        assert!(y.contains(r#""sent_at": null"#));
        assert!(
            y.contains(
                r#""attempt": 1, "topic": "org.fedoraproject.prod.buildsys.build.state.change", "msg_id": "2024-abc""#
            ),
            "{y}"
        );
    }

    #[test]
    fn inert_strings_have_no_template_characters() {
        for s in ["", "yes", "2024-01-01 12:00:00.5 +01:00", "<<", "=", "!", "0x1F", "~", "a\nb"] {
            assert!(is_inert(s), "{s:?}");
        }
        for s in ["{{ x }}", "{% if %}", "{# c #}", "#jinja2: x", "a/b", "é", "x\u{0}", "'"] {
            assert!(!is_inert(s), "{s:?}");
        }
    }

    #[test]
    fn strings_are_escaped_for_pyyaml() {
        let mut out = String::new();
        quote(&mut out, "a\"b\\c\nd\re\tf\u{0}\u{7f}\u{85}\u{2028}\u{fffe}é€😀");
        assert_eq!(out, r#""a\"b\\c\nd\re\tf\u0000\u007F\u0085\u2028\uFFFEé€😀""#);
    }

    #[test]
    fn floats_get_a_dot_and_signed_exponent() {
        let n = |v: Value| match v {
            Value::Number(n) => yaml_number(&n),
            _ => String::new(),
        };
        assert_eq!(n(json!(1.5)), "1.5");
        assert_eq!(n(json!(1e300)), "1.0e+300");
        assert_eq!(n(json!(-2.5e-7)), "-2.5e-7");
        assert_eq!(n(json!(42)), "42");
        assert_eq!(n(json!(u64::MAX)), "18446744073709551615");
        let raw = |t: &str| n(serde_json::from_str(t).unwrap());
        assert_eq!(raw("123456789012345678901234567890"), "123456789012345678901234567890");
        assert_eq!(raw("-0"), "-0");
        assert_eq!(raw("1E5"), "1.0e+5");
        assert_eq!(raw("0.30000000000000004"), "0.30000000000000004");
    }
}
