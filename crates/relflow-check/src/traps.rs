//! Keys that Jinja reads as Python dict methods.
//!
//! In a playbook, `{{ msg.update.title }}` on a bodhi message does not read
//! the key `update`: Jinja's `.` tries the attribute first, and every dict
//! has an `update` method. The playbook gets "'builtin_function_or_method
//! object' has no attribute 'title'", or worse, a method rendered as text.
//! `msg['update']` reads the key. Real Fedora messages have such keys
//! (bodhi's `update`), so `dry-run` warns about them.

use relflow_core::Message;
use serde_json::Value;

/// The methods of a Python dict (what Jinja's `.` finds first).
pub const DICT_METHODS: [&str; 11] =
    ["clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault", "update", "values"];

/// Every path in the message (`msg.update`, `msg.builds[].items`) whose
/// last key is a dict method name.
pub fn dict_method_keys(msg: &Message) -> Vec<String> {
    let mut found = Vec::new();
    for (k, v) in &msg.body {
        walk(&format!("msg.{k}"), k, v, &mut found);
    }
    found.sort();
    found.dedup();
    found
}

fn walk(path: &str, key: &str, value: &Value, found: &mut Vec<String>) {
    if DICT_METHODS.contains(&key) {
        found.push(path.to_owned());
    }
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| walk(&format!("{path}.{k}"), k, v, found)),
        Value::Array(items) => items.iter().for_each(|v| walk(&format!("{path}[]"), "", v, found)),
        _ => {}
    }
}

/// The warning for one such path; `playbook_text` (the rule's playbook)
/// says whether the playbook writes it the dotted way.
pub fn warning(path: &str, playbook: Option<(&str, &str)>) -> String {
    let (parent, key) = path.rsplit_once('.').unwrap_or(("msg", path));
    let mut w = format!(
        "`{path}` is also the name of a Python dict method: in a playbook, `{{{{ {path} }}}}` is that method, not \
         this key; write `{parent}['{key}']`"
    );
    if let Some((name, text)) = playbook {
        if writes(text, path) {
            w.push_str(&format!(" ({name} writes `{path}`)"));
        }
    }
    w
}

/// `text` contains `path` not followed by more of a name (`msg.updates`).
fn writes(text: &str, path: &str) -> bool {
    text.match_indices(path)
        .any(|(i, _)| !text[i + path.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dict_method_keys_are_found_at_any_depth() {
        let body = json!({"update": {"title": "t", "builds": [{"keys": 1, "nvr": "x"}]}, "agent": "bob"});
        let msg = Message::new("a.b", body.as_object().unwrap().clone(), "t").unwrap();
        assert_eq!(dict_method_keys(&msg), ["msg.update", "msg.update.builds[].keys"]);
        let w = warning("msg.update", Some(("bodhi.yml", "msg: '{{ msg.update.title }}'")));
        assert!(w.contains("write `msg['update']`") && w.ends_with("(bodhi.yml writes `msg.update`)"), "{w}");
        assert!(!warning("msg.update", Some(("b.yml", "{{ msg.updates }} {{ msg['update'] }}"))).contains("writes"));
    }
}
