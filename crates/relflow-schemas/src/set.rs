//! A schema directory, loaded, and which of its classes a topic has.

use std::path::{Path, PathBuf};

use relflow_core::TopicPattern;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The file that lists every class in a schema directory.
pub const INDEX: &str = "index.json";

/// The header fedora-messaging puts on every message it publishes: the
/// entry point name of the message's class.
const SCHEMA_HEADER: &str = "fedora_messaging_schema";

/// One message class, as `index.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The entry point name (`bodhi.update.comment.v1`), which is also what
    /// fedora-messaging's `fedora_messaging_schema` header carries.
    pub name: String,
    /// The Python class (`bodhi.messages.schemas.update:UpdateCommentV1`).
    pub class: String,
    /// The class's topic, usually without the publisher's prefix.
    pub topic: String,
    /// The distribution that provides it.
    pub package: Option<String>,
    /// That distribution's version.
    pub version: Option<String>,
    /// The body schema's file, relative to the directory.
    pub file: String,
    /// The body schema.
    #[serde(skip)]
    pub schema: Value,
}

/// `index.json`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Index {
    pub schemas: Vec<Entry>,
    /// Classes the import could not load.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// A schema directory that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No `index.json`: `relflow schemas import` has not been run there.
    #[error("schema directory {0}: no {INDEX}; run `relflow schemas import` first")]
    NoIndex(PathBuf),
    /// A file that cannot be read or parsed.
    #[error("schema directory: {path}: {message}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// The classes of one schema directory.
pub struct SchemaSet {
    /// The directory.
    pub dir: PathBuf,
    /// Every class, in index order.
    pub entries: Vec<Entry>,
    /// One compiled validator per entry (an error for a schema the
    /// validator refuses, which then cannot pass or fail a message).
    pub(crate) validators: Vec<Result<jsonschema::Validator, String>>,
}

/// The classes a rule's topic pattern can reach.
#[derive(Debug)]
pub struct Candidates<'s> {
    /// Every class whose topic some topic the pattern matches resolves to.
    pub entries: Vec<&'s Entry>,
    /// Whether every topic the pattern matches resolves to one of them.
    /// `org.fedoraproject.*.bodhi.update.comment` is closed; `bodhi.#`
    /// is not: it also matches topics no installed package describes.
    pub closed: bool,
}

impl SchemaSet {
    /// Loads `dir/index.json` and every schema it names.
    pub fn load(dir: &Path) -> Result<SchemaSet, LoadError> {
        let index_path = dir.join(INDEX);
        if !index_path.is_file() {
            return Err(LoadError::NoIndex(dir.to_path_buf()));
        }
        let mut index: Index = read_json(&index_path)?;
        for entry in &mut index.schemas {
            entry.schema = read_json(&dir.join(&entry.file))?;
        }
        Ok(SchemaSet::new(dir.to_path_buf(), index.schemas))
    }

    pub(crate) fn new(dir: PathBuf, entries: Vec<Entry>) -> SchemaSet {
        let validators =
            entries.iter().map(|e| jsonschema::validator_for(&e.schema).map_err(|e| e.to_string())).collect();
        SchemaSet { dir, entries, validators }
    }

    /// The classes a message of `topic` with `headers` is one of: the class
    /// its `fedora_messaging_schema` header names, else every class whose
    /// topic is the longest word suffix of `topic` (several when a
    /// publisher keeps versions side by side, like bodhi's
    /// `update.edit.v1` and `.v2`). Empty: no installed schema.
    pub fn for_message(&self, topic: &str, headers: &Map<String, Value>) -> Vec<usize> {
        let named = headers.get(SCHEMA_HEADER).and_then(Value::as_str);
        if let Some(i) = named.and_then(|n| self.entries.iter().position(|e| e.name == n)) {
            return vec![i];
        }
        self.for_topic(topic)
    }

    /// Every class whose topic is the longest word suffix of `topic`.
    pub fn for_topic(&self, topic: &str) -> Vec<usize> {
        let longest = self.entries.iter().filter(|e| word_suffix(&e.topic, topic)).map(|e| e.topic.len()).max();
        let Some(len) = longest else { return Vec::new() };
        (0..self.entries.len())
            .filter(|&i| self.entries[i].topic.len() == len && word_suffix(&self.entries[i].topic, topic))
            .collect()
    }

    /// The classes `pattern` can reach (see [`Candidates`]).
    pub fn for_pattern(&self, pattern: &TopicPattern) -> Candidates<'_> {
        let tail = pattern.literal_tail();
        let resolved = self.for_topic(&tail);
        let closed = !tail.is_empty() && !resolved.is_empty();
        let reachable = |e: &&Entry| {
            if closed {
                // Every match ends with the tail, so it resolves to the
                // tail's own class or to a longer topic ending with it.
                word_suffix(&tail, &e.topic) && e.topic.len() > tail.len() && pattern.can_end_with(&e.topic)
            } else {
                pattern.can_end_with(&e.topic)
            }
        };
        let mut entries: Vec<&Entry> = resolved.iter().map(|&i| &self.entries[i]).collect();
        entries.extend(self.entries.iter().filter(reachable));
        Candidates { entries, closed }
    }
}

/// Whether `suffix` is `topic` or its last whole words (`a.b` of `x.a.b`).
fn word_suffix(suffix: &str, topic: &str) -> bool {
    !suffix.is_empty()
        && topic.ends_with(suffix)
        && (topic.len() == suffix.len() || topic.as_bytes()[topic.len() - suffix.len() - 1] == b'.')
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let bad = |message: String| LoadError::Bad { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(topics: &[&str]) -> SchemaSet {
        let entry = |t: &&str| Entry {
            name: format!("{t}.v1"),
            class: "m:C".into(),
            topic: (*t).into(),
            package: None,
            version: None,
            file: format!("{t}.v1.json"),
            schema: json!({"type": "object"}),
        };
        SchemaSet::new(PathBuf::new(), topics.iter().map(entry).collect())
    }

    fn topics(s: &SchemaSet, pattern: &str) -> (Vec<String>, bool) {
        let c = s.for_pattern(&TopicPattern::parse(pattern).unwrap());
        let mut t: Vec<String> = c.entries.iter().map(|e| e.topic.clone()).collect();
        t.sort();
        (t, c.closed)
    }

    #[test]
    fn a_topic_resolves_to_its_longest_word_suffix() {
        let s = set(&["build.end", "copr.build.end", "git.receive", "pagure.git.receive"]);
        let names = |t: &str| s.for_topic(t).iter().map(|&i| s.entries[i].topic.clone()).collect::<Vec<_>>();
        assert_eq!(names("org.fedoraproject.prod.copr.build.end"), ["copr.build.end"]);
        assert_eq!(names("io.pagure.prod.pagure.git.receive"), ["pagure.git.receive"]);
        assert_eq!(names("org.fedoraproject.prod.git.receive"), ["git.receive"]);
        assert!(names("org.fedoraproject.prod.xgit.receive").is_empty(), "whole words only");
        let headers = json!({"fedora_messaging_schema": "build.end.v1"});
        let by_header = s.for_message("org.fedoraproject.prod.copr.build.end", headers.as_object().unwrap());
        assert_eq!(s.entries[by_header[0]].topic, "build.end", "the header names the class");
    }

    #[test]
    fn a_pattern_reaches_the_topics_it_can_end_with() {
        let s =
            set(&["bodhi.update.comment", "bodhi.update.edit", "buildsys.tag", "git.receive", "pagure.git.receive"]);
        assert_eq!(topics(&s, "org.fedoraproject.*.bodhi.update.comment"), (vec!["bodhi.update.comment".into()], true));
        assert_eq!(topics(&s, "#.update.comment"), (vec![], false), "`#` may stand for any publisher");
        let (t, closed) = topics(&s, "org.fedoraproject.prod.bodhi.#");
        assert_eq!((t, closed), (vec!["bodhi.update.comment".into(), "bodhi.update.edit".into()], false));
        assert_eq!(topics(&s, "*.git.receive"), (vec!["git.receive".into(), "pagure.git.receive".into()], true));
        assert_eq!(topics(&s, "org.fedoraproject.prod.git.receive").0, ["git.receive"], "exact: the longest suffix");
        assert_eq!(topics(&s, "org.fedoraproject.prod.pungi.#"), (vec![], false));
    }
}
