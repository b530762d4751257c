//! Chaining: relflow's events as messages rules can match, and the depth
//! that stops a chain of runs from going on forever.
//!
//! A message from outside has depth 0. An event's depth is one more than
//! the message whose run it reports, and it travels as the
//! [`CHAIN_DEPTH_HEADER`] header on every bus and on the work queue, so a
//! chain is counted even when it leaves relflow and comes back through a
//! bridge. The worker refuses (dead-letters) a message whose runs would be
//! deeper than `[announce] max_chain_depth`.

use chrono::{DateTime, Utc};
use relflow_core::{match_rules, Message, Rule};
use relflow_store::{NewEvent, PendingEvent};
use serde_json::{Map, Value};

/// The header that carries an event's chain depth.
pub const CHAIN_DEPTH_HEADER: &str = "x-relflow-chain-depth";

/// `Message::source` of events put on the work queue by relflow itself.
pub const SOURCE: &str = "announce";

/// How many runs led to `msg`: its [`CHAIN_DEPTH_HEADER`], 0 when it has
/// none (or one that is not a number: the header is advisory, and leaving
/// it out would give 0 as well).
pub fn depth(msg: &Message) -> u32 {
    match msg.headers.get(CHAIN_DEPTH_HEADER) {
        Some(Value::Number(n)) => n.as_u64().map_or(0, |d| u32::try_from(d).unwrap_or(u32::MAX)),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Why `msg` must not run: its runs would be deeper than `max`.
pub fn too_deep(msg: &Message, max: u32) -> Option<String> {
    let runs_at = depth(msg).saturating_add(1);
    (runs_at > max).then(|| {
        format!(
            "chain depth {runs_at} is over [announce] max_chain_depth ({max}): this message reports a run {} \
             level(s) down a chain of runs started by relflow's own events, so a rule probably triggers itself \
             (raise max_chain_depth if the chain is meant to be this long)",
            runs_at - 1
        )
    })
}

/// An event as the message rules see (and the work queue holds): its id,
/// topic, body and headers, sent when it was written.
pub fn message(event: &PendingEvent) -> Message {
    as_message(&event.id, &event.topic, &event.body, &event.headers, event.created_at)
}

/// The message an event about to be written will be.
pub fn new_message(event: &NewEvent) -> Message {
    as_message(&event.id, &event.topic, &event.body, &event.headers, Utc::now())
}

fn as_message(id: &str, topic: &str, body: &Value, headers: &Map<String, Value>, at: DateTime<Utc>) -> Message {
    Message {
        id: id.to_owned(),
        topic: topic.to_owned(),
        body: body.as_object().cloned().unwrap_or_default(),
        headers: headers.clone(),
        sent_at: Some(at),
        source: SOURCE.to_owned(),
    }
}

/// Whether any rule would run for `msg`: only then does an event go onto
/// the work queue (every other event would only be acked as a no-op).
pub fn triggers(rules: &[Rule], msg: &Message) -> bool {
    !match_rules(rules, msg).rules.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_depth(v: Value) -> Message {
        let mut m = Message::new("a.b", Default::default(), "test").unwrap();
        m.headers.insert(CHAIN_DEPTH_HEADER.into(), v);
        m
    }

    #[test]
    fn depth_is_read_from_the_header_and_defaults_to_zero() {
        assert_eq!(depth(&Message::new("a.b", Default::default(), "test").unwrap()), 0);
        assert_eq!(depth(&with_depth(3.into())), 3);
        assert_eq!(depth(&with_depth("4".into())), 4, "AMQP headers may arrive as strings");
        assert_eq!(depth(&with_depth((-1).into())), 0);
        assert_eq!(depth(&with_depth(u64::MAX.into())), u32::MAX);
    }

    #[test]
    fn a_message_whose_runs_would_be_too_deep_is_refused_naming_the_depth() {
        assert!(too_deep(&with_depth(4.into()), 5).is_none(), "its runs are at depth 5");
        let why = too_deep(&with_depth(5.into()), 5).unwrap();
        assert!(why.starts_with("chain depth 6 is over [announce] max_chain_depth (5)"), "{why}");
        assert!(too_deep(&with_depth(u64::MAX.into()), 5).is_some());
    }
}
