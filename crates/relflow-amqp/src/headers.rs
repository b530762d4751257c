//! The headers relflow reads and writes, and what a new copy of a message
//! keeps of the old one's.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::types::{AMQPValue, FieldTable};

/// Header carrying the attempt number (absent = 1).
pub const HEADER_ATTEMPT: &str = "x-relflow-attempt";
/// Header carrying the reason of the last failure (retry) or of the dead-lettering.
pub const HEADER_REASON: &str = "x-relflow-reason";
/// Header carrying the stable id of a dead letter (a signed 64-bit integer).
pub const HEADER_DEAD_ID: &str = "x-relflow-dead-id";
/// Header carrying when a message was dead-lettered (milliseconds since the epoch).
pub const HEADER_DEAD_AT: &str = "x-relflow-dead-at";
/// Header set on a replayed message: the dead-letter id it came from.
pub const HEADER_REPLAYED_FROM: &str = "x-relflow-replayed-from";

/// Reasons longer than this are truncated in headers: the whole header block
/// of a message has to fit in one AMQP frame.
pub(crate) const MAX_REASON_BYTES: usize = 8 * 1024;

/// Headers set by the broker (or by an earlier life of the message) that must
/// not travel to a new copy of it.
const BROKER_HEADERS: &[&str] = &[
    "x-delivery-count",
    "x-acquired-count",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];

/// The headers a new copy of a message keeps: ours, minus the broker's.
pub(crate) fn carried_headers(headers: &FieldTable) -> FieldTable {
    let mut out = FieldTable::default();
    for (k, v) in headers.inner() {
        if !BROKER_HEADERS.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The copy `retry` publishes: one attempt more, and why the last one failed.
pub(crate) fn retry_headers(original: &FieldTable, attempt: u32, reason: &str) -> FieldTable {
    let mut headers = carried_headers(original);
    headers.insert(HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(i64::from(attempt.saturating_add(1))));
    headers.insert(HEADER_REASON.into(), AMQPValue::LongString(truncate(reason).into()));
    headers
}

/// The copy `dead_letter` publishes, with its id and time of death.
pub(crate) fn dead_headers(original: &FieldTable, attempt: u32, reason: &str, id: u64) -> FieldTable {
    let mut headers = carried_headers(original);
    headers.insert(HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(i64::from(attempt.max(1))));
    headers.insert(HEADER_REASON.into(), AMQPValue::LongString(truncate(reason).into()));
    headers.insert(HEADER_DEAD_ID.into(), AMQPValue::LongLongInt(id as i64));
    headers.insert(HEADER_DEAD_AT.into(), AMQPValue::LongLongInt(now_ms() as i64));
    headers
}

/// The copy `replay` publishes: a fresh first attempt, so no attempt header
/// and no dead-letter headers.
pub(crate) fn replay_headers(dead: &FieldTable, id: u64) -> FieldTable {
    let mut fresh = FieldTable::default();
    for (k, v) in carried_headers(dead).inner() {
        if ![HEADER_ATTEMPT, HEADER_REASON, HEADER_DEAD_ID, HEADER_DEAD_AT].contains(&k.as_str()) {
            fresh.insert(k.clone(), v.clone());
        }
    }
    fresh.insert(HEADER_REPLAYED_FROM.into(), AMQPValue::LongLongInt(id as i64));
    fresh
}

/// `x-relflow-attempt`, 1 when absent.
pub(crate) fn attempt_of(headers: &FieldTable) -> u32 {
    header_u64(headers, HEADER_ATTEMPT).map_or(1, |a| a.max(1)) as u32
}

/// How many times the broker has handed this message out, this time included.
/// RabbitMQ 4.x counts only failed deliveries in `x-delivery-count` and all of
/// them in `x-acquired-count`, so the larger of the two is the right one.
pub(crate) fn deliveries_of(headers: &FieldTable) -> u32 {
    let redeliveries =
        header_u64(headers, "x-delivery-count").unwrap_or(0).max(header_u64(headers, "x-acquired-count").unwrap_or(0));
    (redeliveries + 1).min(u64::from(u32::MAX)) as u32
}

pub(crate) fn header_u64(headers: &FieldTable, name: &str) -> Option<u64> {
    match headers.inner().get(name)? {
        AMQPValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::Timestamp(v) => Some(*v),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.trim().parse().ok(),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn header_string(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn truncate(reason: &str) -> String {
    relflow_core::truncate(reason, MAX_REASON_BYTES)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_headers_are_not_carried() {
        let mut h = FieldTable::default();
        h.insert("x-delivery-count".into(), AMQPValue::LongLongInt(3));
        h.insert("x-death".into(), AMQPValue::Void);
        h.insert(HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(2));
        let c = carried_headers(&h);
        assert!(!c.contains_key("x-delivery-count"));
        assert!(!c.contains_key("x-death"));
        assert_eq!(header_u64(&c, HEADER_ATTEMPT), Some(2));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let t = truncate(&long);
        assert!(t.len() <= MAX_REASON_BYTES + 3);
        assert!(t.ends_with("..."));
    }
}
