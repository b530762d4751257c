//! A message's subject: one short human line saying what it was about, so
//! eight runs of one rule in a list tell apart at a glance
//! (`Fedora-Rawhide-20261124.n.0 FINISHED`,
//! `kernel-6.12.1-200.fc41 tagged f41-updates-candidate`).
//!
//! Known Fedora topics get a line from their fields; any other message, or
//! one missing a field, gets the topic's last two words. The line is cut
//! to [`MAX_SUBJECT`] bytes and has no control characters, so a payload
//! cannot forge a line in a terminal listing.

use serde_json::{Map, Value};

/// Longest subject, in bytes (before the `...` of a cut).
pub const MAX_SUBJECT: usize = 120;

/// The subject of a message with `topic` and `body`.
pub fn subject(topic: &str, body: &Map<String, Value>) -> String {
    let line = known(topic, body).unwrap_or_else(|| fallback(topic));
    crate::truncate(&crate::escape_controls(&line), MAX_SUBJECT)
}

/// The subject of a message whose body is not known: the topic's last two
/// words (`status.change`, `update.comment`).
pub fn fallback(topic: &str) -> String {
    let words: Vec<&str> = topic.rsplitn(3, '.').collect();
    let last_two: Vec<&str> = words.iter().take(2).rev().copied().collect();
    last_two.join(".")
}

/// A line from a known topic's fields; `None` when the topic is not known
/// or a field it needs is missing.
fn known(topic: &str, body: &Map<String, Value>) -> Option<String> {
    if topic.ends_with(".pungi.compose.status.change") {
        return Some(format!("{} {}", text(body, "compose_id")?, text(body, "status")?));
    }
    if let Some(verb) = [(".buildsys.tag", "tagged"), (".buildsys.untag", "untagged")]
        .into_iter()
        .find_map(|(suffix, verb)| topic.ends_with(suffix).then_some(verb))
    {
        let nvr = [text(body, "name")?, text(body, "version")?, text(body, "release")?].join("-");
        return Some(format!("{nvr} {verb} {}", text(body, "tag")?));
    }
    if topic.contains(".bodhi.update.") {
        // A comment carries its update inside it.
        let comment = body.get("comment").and_then(Value::as_object);
        let update = body.get("update").or_else(|| comment?.get("update"))?.as_object()?;
        let name = text(update, "alias").or_else(|| text(update, "title"))?;
        let what = text(update, "status").or_else(|| text(update, "title"))?;
        return Some(format!("{name} {what}"));
    }
    None
}

/// A non-empty string field.
fn text<'a>(v: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_missing_field_falls_back_to_the_topic() {
        let topic = "org.fedoraproject.prod.pungi.compose.status.change";
        assert_eq!(subject(topic, &body(json!({"status": "FINISHED"}))), "status.change");
        assert_eq!(subject(topic, &body(json!({"compose_id": 7, "status": "FINISHED"}))), "status.change");
    }

    #[test]
    fn short_topics_fall_back_to_what_they_have() {
        assert_eq!(fallback("a.b.c"), "b.c");
        assert_eq!(fallback("a.b"), "a.b");
        assert_eq!(fallback("single"), "single");
    }

    #[test]
    fn a_payload_cannot_put_control_characters_or_a_long_line_in_a_listing() {
        let topic = "org.fedoraproject.prod.pungi.compose.status.change";
        let forged = subject(topic, &body(json!({"compose_id": "F-1\nFAKE LINE\u{1b}[31m", "status": "x"})));
        assert!(!forged.chars().any(char::is_control), "{forged:?}");
        let long = subject(topic, &body(json!({"compose_id": "x".repeat(1000), "status": "FINISHED"})));
        assert!(long.len() <= MAX_SUBJECT + 3, "{}", long.len());
    }
}
