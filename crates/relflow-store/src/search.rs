//! Finding runs by what their message was about: the terms a run is
//! indexed under, and how search text becomes terms to look up.
//!
//! One design for both backends: a `(term, run_id)` table written in the
//! transaction that records the run, searched with a prefix range on its
//! primary key (a B-tree seek in SQLite and PostgreSQL alike). Full-text
//! engines were the other choice, but their tokenizers split
//! `Fedora-Rawhide-20261124.n.0` or `kernel-6.12.1-200.fc41` into
//! pieces, and they are two engines that would disagree; here the one
//! tokenizer below decides for both.
//!
//! Terms are the message body's string values, lowercased, cut at every
//! character that is not a letter, a digit or one of `. - _ + ~`: compose
//! ids, NVRs and update aliases stay whole, URLs and paths fall into their
//! segments. A search word matches every term it is a prefix of, and all
//! words of a search must match.

use std::collections::BTreeSet;

use serde_json::Value;

/// Most terms one run is indexed under: a bodhi update with a long comment
/// thread must not turn one run into thousands of index rows. Values
/// without spaces (ids, NVRs, tags) are taken first, prose after.
pub const MAX_TERMS: usize = 400;

/// Longest term, in bytes; longer words are cut (a search word is cut the
/// same way, so it still finds them by prefix).
const MAX_TERM: usize = 100;

/// Shortest term: single characters match too much to be worth a row.
const MIN_TERM: usize = 2;

/// The terms a run whose message is `message` is indexed under. `message`
/// is the message as queued (its `body` holds the payload); a bare body is
/// taken as it is. The run's `subject` is indexed too: it names what a
/// body only has in pieces (a tagged build's NVR from `name`, `version`
/// and `release`).
pub(crate) fn run_terms(message: &Value, subject: &str) -> Vec<String> {
    let mut strings = Vec::new();
    collect_strings(body(message), &mut strings);
    // The subject and identifiers before prose, so the cap drops prose first.
    strings.sort_by_key(|s| s.contains(char::is_whitespace));
    strings.insert(0, subject);
    let mut terms = BTreeSet::new();
    for s in strings {
        for term in words(s) {
            if terms.len() == MAX_TERMS {
                return terms.into_iter().collect();
            }
            terms.insert(term);
        }
    }
    terms.into_iter().collect()
}

/// The message's payload.
pub(crate) fn body(message: &Value) -> &Value {
    message.get("body").unwrap_or(message)
}

/// The words of search text, as terms to match by prefix; empty when it
/// has nothing to look for.
pub fn search_words(text: &str) -> Vec<String> {
    let words: BTreeSet<String> = words(text).collect();
    words.into_iter().collect()
}

fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    let inner = |c: char| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '~');
    text.split(move |c: char| !inner(c))
        // A sentence's full stop or a dash around a word is not part of it.
        .map(|w| w.trim_matches(['.', '-', '_']))
        .filter(|w| w.len() >= MIN_TERM)
        .map(|w| cut(&w.to_lowercase()))
}

fn cut(term: &str) -> String {
    let mut end = term.len().min(MAX_TERM);
    while !term.is_char_boundary(end) {
        end -= 1;
    }
    term[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn release_engineering_ids_stay_whole() {
        let terms = run_terms(
            &json!({"body": {
                "compose_id": "Fedora-Rawhide-20261124.n.0",
                "build": {"nvr": "kernel-6.12.1-200.fc41"},
                "alias": "FEDORA-2026-abc123",
                "location": "https://kojipkgs.fedoraproject.org/compose/rawhide/Fedora-Rawhide-20261124.n.0/compose",
            }}),
            "",
        );
        for t in ["fedora-rawhide-20261124.n.0", "kernel-6.12.1-200.fc41", "fedora-2026-abc123", "rawhide", "compose"] {
            assert!(terms.contains(&t.to_owned()), "{t} not in {terms:?}");
        }
        assert!(terms.contains(&"kojipkgs.fedoraproject.org".to_owned()), "{terms:?}");
    }

    #[test]
    fn the_subject_is_indexed_before_the_body() {
        let many: Vec<String> = (0..2000).map(|i| format!("word{i}")).collect();
        let body = json!({"body": {"name": "kernel", "text": many.join(" ")}});
        let terms = run_terms(&body, "kernel-6.12.1-200.fc41 tagged f41-updates-candidate");
        assert!(terms.contains(&"kernel-6.12.1-200.fc41".to_owned()), "{terms:?}");
        assert!(terms.contains(&"f41-updates-candidate".to_owned()), "{terms:?}");
    }

    #[test]
    fn prose_is_split_into_words_without_punctuation() {
        let terms =
            run_terms(&json!({"body": {"text": "Depends on pipewire-0.2.6-1.fc30, see FEDORA-2019-1. Done."}}), "");
        assert_eq!(terms, ["depends", "done", "fedora-2019-1", "on", "pipewire-0.2.6-1.fc30", "see"]);
    }

    #[test]
    fn only_string_values_count_and_the_number_of_terms_is_capped() {
        let terms = run_terms(&json!({"body": {"the_key": 12345, "ok": true}}), "");
        assert!(terms.is_empty(), "{terms:?}");
        let many: Vec<String> = (0..2000).map(|i| format!("word{i}")).collect();
        let terms = run_terms(&json!({"body": {"id": "FEDORA-2026-keep", "text": many.join(" ")}}), "");
        assert_eq!(terms.len(), MAX_TERMS);
        assert!(terms.contains(&"fedora-2026-keep".to_owned()), "identifiers are kept first");
    }

    #[test]
    fn search_text_becomes_the_same_terms() {
        assert_eq!(search_words("  Fedora-Rawhide-20261124.n.0 "), ["fedora-rawhide-20261124.n.0"]);
        assert_eq!(search_words("kernel f41"), ["f41", "kernel"]);
        assert!(search_words("* ! ?").is_empty());
        let long = "x".repeat(300);
        assert_eq!(search_words(&long), [cut(&long)]);
    }
}
