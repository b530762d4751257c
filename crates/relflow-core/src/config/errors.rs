//! TOML errors, said the way an operator fixes them.
//!
//! serde's "unknown field `retires`, expected one of ..." (or "missing field
//! `topic`") under a "not valid TOML" heading sends people looking for a
//! syntax error. The valid keys are
//! in that message, so this names the key, the table it is in (found from
//! the error's position), and the closest valid key. Writing `[rule]` for
//! `[[rule]]` gives "invalid type: map, expected a sequence", or "duplicate
//! key" for the second rule, and gets the difference explained.

use std::path::Path;

use super::ConfigError;

/// The tables that are lists, and so need double brackets.
const ARRAYS: [&str; 4] = ["rule", "rule.test", "source", "timer"];

pub(super) fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let at = e.span().map_or(0, |s| s.start).min(text.len());
    let line = text[..at].matches('\n').count() + 1;
    if let Some(unknown) = unknown_key(e.message()) {
        let table = enclosing_table(text, at);
        let mut message = format!("unknown key `{}` in {table} (line {line})", unknown.key);
        if let Some(close) = closest(&unknown.key, &unknown.expected) {
            message.push_str(&format!("; did you mean `{close}`?"));
        }
        if !unknown.expected.is_empty() {
            message.push_str(&format!(" Valid keys there: {}.", unknown.expected.join(", ")));
        }
        return ConfigError::Invalid { path: path.into(), message };
    }
    // "missing field" is not a syntax error either.
    if let Some(key) = e.message().strip_prefix("missing field ") {
        let message = format!("required key {key} is missing from {} (line {line})", table_at(text, e.span()));
        return ConfigError::Invalid { path: path.into(), message };
    }
    let mut message = e.to_string();
    if let Some(name) = single_bracket_array(text, at) {
        message.push_str(&format!(
            "\nhint: `[{name}]` declares one table, but `{name}` is a list: write `[[{name}]]` (double \
             brackets) above each one"
        ));
    }
    ConfigError::Toml { path: path.into(), message }
}

struct UnknownKey {
    key: String,
    expected: Vec<String>,
}

/// Reads serde's `unknown field `x`, expected one of `a`, `b``: the names
/// are the back-quoted words, the first being the unknown one.
fn unknown_key(message: &str) -> Option<UnknownKey> {
    let rest = message.strip_prefix("unknown field ")?;
    let mut names = rest.split('`').skip(1).step_by(2).map(str::to_owned);
    Some(UnknownKey { key: names.next()?, expected: names.collect() })
}

/// The valid key closest to `key`, if any is close (the did-you-mean).
pub(super) fn closest<'a>(key: &str, valid: &'a [String]) -> Option<&'a str> {
    valid
        .iter()
        .map(|v| (strsim::jaro_winkler(v, key), v.as_str()))
        .filter(|(score, _)| *score >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v)
}

/// The table header above byte `at`, as written (`[[rule]]`, `[ansible]`).
/// A key in a header line itself (`[ansibel]`) belongs to the table above:
/// the top level, or the header's parent.
fn enclosing_table(text: &str, at: usize) -> String {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let own = text[line_start..].lines().next().unwrap_or("").trim_start();
    if let Some(header) = header_name(own) {
        return match header.rsplit_once('.') {
            Some((parent, _)) => format!("[{parent}]"),
            None => "the top level".into(),
        };
    }
    let header = text[..line_start].lines().rev().map(str::trim).find_map(|l| Some((l, header_name(l)?)));
    match header {
        Some((l, name)) if l.starts_with("[[") => format!("[[{name}]]"),
        Some((_, name)) => format!("[{name}]"),
        None => "the top level".into(),
    }
}

/// The table a "missing field" error is about: serde points at its header,
/// or at nothing for the top level.
fn table_at(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    // The top level's span is empty.
    let Some(at) = span.filter(|s| !s.is_empty()).map(|s| s.start.min(text.len())) else {
        return "the top level".into();
    };
    let own = text[at..].lines().next().unwrap_or("").trim();
    match header_name(own) {
        Some(name) if own.starts_with("[[") => format!("[[{name}]]"),
        Some(name) => format!("[{name}]"),
        None => enclosing_table(text, at),
    }
}

/// `rule` for `[rule]` and `[[rule]]`, `rule.test` for `[[rule.test]]`.
fn header_name(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let name = inner.split(']').next()?;
    Some(name.split('.').map(str::trim).collect::<Vec<_>>().join("."))
}

/// `Some("rule")` when the error is at (or under) a `[rule]` header that
/// should have been `[[rule]]`.
fn single_bracket_array(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?.trim();
    let single = line.starts_with('[') && !line.starts_with("[[");
    let name = header_name(line)?;
    (single && ARRAYS.contains(&name.as_str())).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        let e = toml::from_str::<super::super::RawConfig>(text).unwrap_err();
        toml_error(Path::new("relflow.toml"), text, &e).to_string()
    }

    #[test]
    fn unknown_keys_name_the_key_the_table_and_the_closest_valid_key() {
        let e = error("playbooks_dir = 'p'\n[[rule]]\nname = 'a'\ntopic = '#'\nplaybook = 'a.yml'\nretires = 2\n");
        assert!(
            e.starts_with("config relflow.toml: unknown key `retires` in [[rule]] (line 6); did you mean `retries`?"),
            "{e}"
        );
        assert!(e.contains("Valid keys there: name, topic"), "{e}");
        let e = error("playbooks_dir = 'p'\n[ansible]\nplaybok_cmd = 'x'\n");
        assert!(e.contains("unknown key `playbok_cmd` in [ansible] (line 3); did you mean `playbook_cmd`?"), "{e}");
        let e = error("playbooks_dir = 'p'\n[ansibel]\n");
        assert!(e.contains("unknown key `ansibel` in the top level (line 2); did you mean `ansible`?"), "{e}");
        let e = error(
            "playbooks_dir = 'p'\n[[rule]]\nname = 'a'\ntopic = '#'\nplaybook = 'a.yml'\n[[rule.test]]\nmesage = 'x'\n",
        );
        assert!(e.contains("unknown key `mesage` in [[rule.test]] (line 7); did you mean `message`?"), "{e}");
    }

    #[test]
    fn a_missing_key_is_named_with_its_table_not_called_bad_toml() {
        let e = error("[[rule]]\nname = 'a'\ntopic = '#'\nplaybook = 'a.yml'\n");
        assert_eq!(e, "config relflow.toml: required key `playbooks_dir` is missing from the top level (line 1)");
        let e = error("playbooks_dir = 'p'\n[[rule]]\nname = 'a'\nplaybook = 'a.yml'\n");
        assert_eq!(e, "config relflow.toml: required key `topic` is missing from [[rule]] (line 2)");
        let e = error("[[rule]]\nname = 'a'\nplaybook = 'a.yml'\n");
        assert!(e.contains("`topic` is missing from [[rule]] (line 1)"), "{e}");
    }

    #[test]
    fn a_single_bracket_rule_is_explained() {
        let one = error("playbooks_dir = 'p'\n[rule]\nname = 'a'\ntopic = '#'\nplaybook = 'a.yml'\n");
        assert!(one.contains("hint: `[rule]` declares one table, but `rule` is a list: write `[[rule]]`"), "{one}");
        let two = error("playbooks_dir = 'p'\n[rule]\nname = 'a'\n[rule]\nname = 'b'\n");
        assert!(two.contains("duplicate key") && two.contains("write `[[rule]]`"), "{two}");
        let test = error("playbooks_dir = 'p'\n[[rule]]\nname = 'a'\ntopic = '#'\nplaybook = 'a.yml'\n[rule.test]\n");
        assert!(test.contains("write `[[rule.test]]`"), "{test}");
    }
}
