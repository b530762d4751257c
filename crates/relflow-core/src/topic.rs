//! AMQP-style topic patterns: `*` stands for exactly one dot-separated word,
//! `#` for zero or more words. The same rules RabbitMQ uses for topic
//! exchange bindings, so a rule's topic can be used as a binding key as is.

use std::fmt;

/// A compiled topic pattern such as `org.fedoraproject.*.pungi.#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    source: String,
    words: Vec<Word>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    Literal(String),
    One,
    Many,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("topic pattern is empty")]
    Empty,
    #[error("topic pattern {0:?} has an empty word (leading, trailing or doubled dot)")]
    EmptyWord(String),
    #[error("topic pattern {0:?}: `*` and `#` must be whole words (like `a.*.c`), not part of one")]
    PartialWildcard(String),
    #[error("topic pattern {0:?} contains white space")]
    WhiteSpace(String),
}

impl TopicPattern {
    pub fn parse(pattern: &str) -> Result<TopicPattern, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.chars().any(char::is_whitespace) {
            return Err(PatternError::WhiteSpace(pattern.to_owned()));
        }
        let words = pattern
            .split('.')
            .map(|w| match w {
                "" => Err(PatternError::EmptyWord(pattern.to_owned())),
                "*" => Ok(Word::One),
                "#" => Ok(Word::Many),
                w if w.contains(['*', '#']) => Err(PatternError::PartialWildcard(pattern.to_owned())),
                w => Ok(Word::Literal(w.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(TopicPattern { source: pattern.to_owned(), words })
    }

    /// A pattern that matches `topic` itself and nothing else: `*` and `#`
    /// are plain characters (loopabull compared routing keys as strings).
    pub fn exact(topic: &str) -> TopicPattern {
        let words = topic.split('.').map(|w| Word::Literal(w.to_owned())).collect();
        TopicPattern { source: topic.to_owned(), words }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, topic: &str) -> bool {
        let topic: Vec<&str> = topic.split('.').collect();
        // reach[j]: the pattern words seen so far can match topic[..j].
        // Dynamic programming keeps `#.#.#` patterns linear, not exponential.
        let mut reach = vec![false; topic.len() + 1];
        reach[0] = true;
        for word in &self.words {
            let mut next = vec![false; topic.len() + 1];
            match word {
                Word::Many => {
                    let mut any = false;
                    for j in 0..=topic.len() {
                        any |= reach[j];
                        next[j] = any;
                    }
                }
                Word::One => (1..=topic.len()).for_each(|j| next[j] = reach[j - 1]),
                Word::Literal(lit) => (1..=topic.len()).for_each(|j| next[j] = reach[j - 1] && topic[j - 1] == lit),
            }
            reach = next;
        }
        reach[topic.len()]
    }
}

impl TopicPattern {
    /// The literal words after the last wildcard (`bodhi.update.comment`
    /// of `org.*.bodhi.update.comment`; empty for `a.#`): every topic the
    /// pattern matches ends with them.
    pub fn literal_tail(&self) -> String {
        let start = self.words.iter().rposition(|w| !matches!(w, Word::Literal(_))).map_or(0, |i| i + 1);
        let words: Vec<&str> = self.words[start..]
            .iter()
            .filter_map(|w| match w {
                Word::Literal(l) => Some(l.as_str()),
                _ => None,
            })
            .collect();
        words.join(".")
    }

    /// Whether the pattern matches some topic `PREFIX.tail` (any prefix
    /// words, or none) in which the first word of `tail` is matched by a
    /// literal or a `*`, not swallowed by a `#`: schema topics are written
    /// without the publisher's `org.fedoraproject.prod.`, and a `#` standing
    /// for a whole publisher would reach every class of every package.
    pub fn can_end_with(&self, tail: &str) -> bool {
        // The same dynamic programming as `matches`, from the last word
        // backwards; reach[j]: the words seen can match the last j of tail.
        let tail: Vec<&str> = tail.rsplit('.').collect();
        let n = tail.len();
        let mut reach = vec![false; n + 1];
        reach[0] = true;
        for word in self.words.iter().rev() {
            let mut next = vec![false; n + 1];
            match word {
                Word::Many => {
                    let mut any = false;
                    for j in 0..=n {
                        any |= reach[j];
                        next[j] = any;
                    }
                }
                Word::One => (1..=n).for_each(|j| next[j] = reach[j - 1]),
                Word::Literal(lit) => (1..=n).for_each(|j| next[j] = reach[j - 1] && tail[j - 1] == lit),
            }
            if next[n] && !matches!(word, Word::Many) {
                return true;
            }
            reach = next;
        }
        false
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, topic: &str) -> bool {
        TopicPattern::parse(pattern).unwrap().matches(topic)
    }

    #[test]
    fn literal_and_star() {
        assert!(m("a.b.c", "a.b.c"));
        assert!(!m("a.b.c", "a.b"));
        assert!(!m("a.b", "a.b.c"));
        assert!(m("a.*.c", "a.x.c"));
        assert!(!m("a.*.c", "a.c"), "* is exactly one word");
        assert!(!m("a.*.c", "a.x.y.c"));
        assert!(m(
            "org.fedoraproject.*.pungi.compose.status.change",
            "org.fedoraproject.prod.pungi.compose.status.change"
        ));
    }

    #[test]
    fn hash_is_zero_or_more_words() {
        assert!(m("#", "a"));
        assert!(m("#", "a.b.c"));
        assert!(m("a.#", "a"));
        assert!(m("a.#", "a.b.c"));
        assert!(m("a.#.c", "a.c"));
        assert!(m("a.#.c", "a.b.b.c"));
        assert!(!m("a.#.c", "a.b.d"));
        assert!(m("#.change", "org.fedoraproject.prod.buildsys.build.state.change"));
        assert!(m("#.*", "a"), "# takes nothing, * takes the one word");
        assert!(!m("*.#.*", "a"));
        let long = format!("{}.z", vec!["a"; 60].join("."));
        assert!(m("#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.z", &long), "many #s stay fast and correct");
        assert!(!m("#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.y", &long));
    }

    #[test]
    fn literal_tail_and_can_end_with() {
        let p = |s: &str| TopicPattern::parse(s).unwrap();
        assert_eq!(p("org.*.bodhi.update.comment").literal_tail(), "bodhi.update.comment");
        assert_eq!(p("a.#").literal_tail(), "");
        assert_eq!(p("a.b").literal_tail(), "a.b");
        assert!(p("org.fedoraproject.prod.bodhi.update.comment").can_end_with("bodhi.update.comment"));
        assert!(p("org.fedoraproject.*.bodhi.#").can_end_with("bodhi.update.comment"));
        assert!(p("bodhi.update.comment").can_end_with("bodhi.update.comment"));
        assert!(p("*.*.comment").can_end_with("bodhi.update.comment"));
        assert!(!p("org.fedoraproject.prod.bodhi.#").can_end_with("buildsys.tag"), "# swallowing a whole publisher");
        assert!(!p("#").can_end_with("buildsys.tag"));
        assert!(!p("org.fedoraproject.prod.bodhi.update.edit").can_end_with("bodhi.update.comment"));
        assert!(!p("update.comment").can_end_with("bodhi.update.comment"), "the pattern is too short");
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert_eq!(TopicPattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(TopicPattern::parse("a..b"), Err(PatternError::EmptyWord(_))));
        assert!(matches!(TopicPattern::parse("a.b*"), Err(PatternError::PartialWildcard(_))));
        assert!(matches!(TopicPattern::parse("a. b"), Err(PatternError::WhiteSpace(_))));
    }
}
