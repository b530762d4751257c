//! Paging and counting that stay fast at a million runs: keyset cursors,
//! a bounded offset, capped counts and id-prefix ranges. Both backends use
//! these, so they agree on what a page and a prefix mean.

use relflow_core::TopicPattern;
use serde::Serialize;

use crate::{search, RunFilter, RunRecord, RunStatus, StoreError};

/// Deepest `offset` a listing accepts: an offset is read and thrown away
/// row by row, a cursor is a seek.
pub const MAX_OFFSET: usize = 10_000;

/// Filters the counters do not cover are counted up to this many rows.
pub const COUNT_CAP: u64 = 10_000;

/// Where a page ended: the next page starts after this run. Written as
/// `<started_at ms>.<run id>`, opaque to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub started_at: i64,
    pub id: String,
}

impl Cursor {
    /// The cursor of the page that ends with `run`.
    pub fn after(run: &RunRecord) -> Cursor {
        Cursor { started_at: run.started_at.timestamp_millis(), id: run.id.clone() }
    }

    pub fn parse(s: &str) -> Option<Cursor> {
        let (ms, id) = s.split_once('.')?;
        Some(Cursor { started_at: ms.parse().ok()?, id: id.to_owned() })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.started_at, self.id)
    }
}

/// How many runs of one rule are in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCount {
    pub rule: String,
    pub status: RunStatus,
    pub count: u64,
}

impl RunFilter {
    /// `(rule, status)` when the filter is on those alone, so the counters
    /// answer [`count`](crate::RunStore::count) exactly.
    pub(crate) fn counter_key(&self) -> Option<(Option<String>, Option<&'static str>)> {
        let only_counted = self.topic.is_none()
            && self.message_id.is_none()
            && self.since.is_none()
            && self.until.is_none()
            && self.search.is_none();
        only_counted.then(|| (self.rule.clone(), self.status.map(RunStatus::as_str)))
    }

    /// The topic filter as a pattern when it is one (a topic never holds
    /// `*` or `#`), so an exact topic stays an index seek. Also refuses
    /// search text with nothing to look for, which would otherwise match
    /// every run.
    pub(crate) fn topic_pattern(&self) -> crate::Result<Option<TopicPattern>> {
        if let Some(text) = self.search.as_deref().filter(|s| search::search_words(s).is_empty()) {
            return Err(StoreError::BadFilter(format!(
                "search {text:?} has no word to look for; give a word of two or more letters or digits"
            )));
        }
        match self.topic.as_deref() {
            Some(t) if t.contains(['*', '#']) => {
                TopicPattern::parse(t).map(Some).map_err(|e| StoreError::BadFilter(format!("topic filter: {e}")))
            }
            _ => Ok(None),
        }
    }

    /// The limit as SQL: 0 means no limit.
    pub(crate) fn sql_limit(&self) -> i64 {
        if self.limit == 0 {
            i64::MAX
        } else {
            self.limit as i64
        }
    }

    pub(crate) fn checked_offset(&self) -> crate::Result<usize> {
        if self.offset > MAX_OFFSET {
            return Err(crate::StoreError::OffsetTooDeep(self.offset));
        }
        Ok(self.offset)
    }
}

/// Ids starting with `prefix` are those in `[prefix, prefix + U+10FFFF)`
/// (byte order), a range an index seeks to; unlike `LIKE`, nothing in the
/// prefix is a wildcard.
pub(crate) fn prefix_range(prefix: &str) -> (String, String) {
    (prefix.to_owned(), format!("{prefix}\u{10FFFF}"))
}

/// The distinct topics of `table`, one index seek each (a loose index
/// scan, in SQL both backends speak): how a topic pattern finds the topics
/// it matches without reading every run.
pub(crate) fn topics_sql(table: &str) -> String {
    format!(
        "WITH RECURSIVE t(topic) AS (
             SELECT MIN(topic) FROM {table}
             UNION ALL
             SELECT (SELECT MIN(topic) FROM {table} WHERE topic > t.topic) FROM t WHERE t.topic IS NOT NULL)
         SELECT topic FROM t WHERE topic IS NOT NULL"
    )
}

/// The stored `topics` that `pattern` matches.
pub(crate) fn matching(pattern: &TopicPattern, topics: Vec<String>) -> Vec<String> {
    topics.into_iter().filter(|t| pattern.matches(t)).collect()
}

/// Sums counter rows into one total.
pub(crate) fn sum(counts: &[RuleCount], rule: Option<&str>, status: Option<&str>) -> u64 {
    counts
        .iter()
        .filter(|c| rule.is_none_or(|r| r == c.rule) && status.is_none_or(|s| s == c.status.as_str()))
        .map(|c| c.count)
        .sum()
}

/// The one run a prefix names: an exact id wins over longer ids it
/// prefixes (rows come in id order, so an exact match is first).
pub(crate) fn unique(mut found: Vec<crate::RunDetail>, prefix: &str) -> crate::Result<Option<crate::RunDetail>> {
    match found.len() {
        0 | 1 => Ok(found.pop()),
        _ if found[0].record.id == prefix => Ok(found.into_iter().next()),
        _ => Err(crate::StoreError::Ambiguous(prefix.to_owned())),
    }
}
