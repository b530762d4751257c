//! The one message shape everything in relflow works on, and the decoders
//! that turn bus formats into it.
//!
//! Two wire formats reach relflow: fedmsg envelopes (`topic`, `msg`,
//! `msg_id`, `timestamp`, `i`, `username`, `crypto`, `signature`,
//! `certificate`) and fedora-messaging messages (`topic`, `headers`, `id`,
//! `body`). Both map onto [`Message`]. Envelope fields that have no place in
//! the model (the fedmsg signature, `i`, `username`, the original timestamp,
//! ...) are kept under `headers["fedmsg"]`, so [`Message::to_fedmsg_envelope`]
//! can rebuild the envelope a signature was made over.
//!
//! Decoding is strict about shape and generous about content: a message must
//! be a JSON object with a topic and an object body, but whatever is inside
//! the body is the publisher's business. Every way it can be wrong has its
//! own [`DecodeError`] variant with a message that names the problem.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The default upper bound on one encoded message. Koji build messages with
/// many tasks reach a few hundred KiB; anything past this is a mistake or an
/// attack, and is refused before it is parsed.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Room on the work queue for what relflow wraps around what a sender sent
/// (topic, id, source, HTTP or AMQP headers). `max_message_bytes` is a limit
/// on the sender's bytes, checked at the door; a wrapped message within it
/// must still be accepted by the queue and the worker.
pub const WRAPPING_ALLOWANCE: usize = 64 * 1024;

/// The largest queue payload a `max_message_bytes` limit allows.
pub fn queue_payload_limit(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_add(WRAPPING_ALLOWANCE)
}

/// A bus event, whatever bus it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Unique per event; the dedupe key for runs. Taken from the bus
    /// (`msg_id`, `id`), or derived from the content when the bus gave none,
    /// so the same event decodes to the same id every time.
    pub id: String,
    /// Dot-separated topic / routing key, e.g. `org.fedoraproject.prod.buildsys.tag`.
    pub topic: String,
    /// The payload (fedmsg `msg`, fedora-messaging `body`).
    pub body: Map<String, Value>,
    /// AMQP headers, plus `fedmsg` for fedmsg envelope fields.
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// When the publisher sent it, if it said.
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
    /// Where relflow got it: `fedmsg`, `amqp`, `cli`, `webhook:<name>`, ...
    pub source: String,
}

/// Why some bytes are not a message. The `Display` text is meant for the
/// operator reading a dead letter or a `publish` error.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("message is {size} bytes, over the {limit}-byte limit (max_message_bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("message is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    #[error("message is not valid JSON: {0}")]
    NotJson(String),
    #[error("message must be a JSON object, found {found}")]
    NotAnObject { found: &'static str },
    #[error(
        "message is neither a fedmsg envelope (needs `topic` and `msg`) nor a fedora-messaging \
         message (needs `topic` and `body`); found keys: {keys}"
    )]
    UnknownFormat { keys: String },
    #[error("`{field}` must be {expected}, found {found}")]
    WrongType { field: &'static str, expected: &'static str, found: &'static str },
    #[error("invalid topic {topic:?}: {reason}")]
    BadTopic { topic: String, reason: &'static str },
    #[error("invalid `{field}`: {value}")]
    BadTime { field: &'static str, value: String },
    #[error("not a relflow queue payload: {0}")]
    BadPayload(String),
}

/// The JSON type name of `v`, for error messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks a topic is something rules can match and AMQP can route: 1 to 255
/// bytes of dot-separated, non-empty words, no white space or control
/// characters, and no `*` or `#` (those are pattern characters).
pub fn validate_topic(topic: &str) -> Result<(), DecodeError> {
    // The error echoes the topic: a 10 KB one is cut, not repeated in full.
    let bad = |reason| Err(DecodeError::BadTopic { topic: crate::truncate(topic, 300), reason });
    if topic.is_empty() {
        return bad("it is empty");
    }
    if topic.len() > 255 {
        return bad("it is longer than 255 bytes");
    }
    if topic.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains white space or control characters");
    }
    if topic.contains(['*', '#']) {
        return bad("`*` and `#` are pattern characters, not allowed in a topic");
    }
    if topic.split('.').any(str::is_empty) {
        return bad("it has an empty word (leading, trailing or doubled dot)");
    }
    Ok(())
}

impl Message {
    /// A new event from relflow itself (`relflow publish TOPIC BODY`): a fresh
    /// random id and the current time.
    pub fn new(topic: &str, body: Map<String, Value>, source: &str) -> Result<Message, DecodeError> {
        validate_topic(topic)?;
        Ok(Message {
            id: uuid::Uuid::new_v4().to_string(),
            topic: topic.to_owned(),
            body,
            headers: Map::new(),
            sent_at: Some(Utc::now()),
            source: source.to_owned(),
        })
    }

    /// Decodes a fedmsg envelope or a fedora-messaging message, telling them
    /// apart by their keys (`msg` vs `body`). `source` says where it came from.
    pub fn decode(bytes: &[u8], source: &str, max_bytes: usize) -> Result<Message, DecodeError> {
        let obj = parse_object(bytes, max_bytes)?;
        match (obj.contains_key("msg"), obj.contains_key("body")) {
            (true, false) => Self::from_fedmsg(obj, source),
            (false, true) => Self::from_fedora_messaging(obj, source),
            _ => Err(DecodeError::UnknownFormat { keys: obj.keys().cloned().collect::<Vec<_>>().join(", ") }),
        }
    }

    /// Maps a fedmsg envelope. Envelope fields without a place in the model
    /// go to `headers["fedmsg"]` so the envelope can be rebuilt exactly.
    pub fn from_fedmsg(mut env: Map<String, Value>, source: &str) -> Result<Message, DecodeError> {
        let topic = take_string(&mut env, "topic")?
            .ok_or(DecodeError::UnknownFormat { keys: env.keys().cloned().collect::<Vec<_>>().join(", ") })?;
        validate_topic(&topic)?;
        let body = take_object(&mut env, "msg")?.unwrap_or_default();
        // An empty `headers: {}` stays among the envelope fields, so the
        // envelope a signature covers is rebuilt byte for byte.
        let mut headers = match env.get("headers") {
            Some(Value::Object(h)) if h.is_empty() => Map::new(),
            _ => take_object(&mut env, "headers")?.unwrap_or_default(),
        };
        let msg_id = take_string(&mut env, "msg_id")?.filter(|s| !s.is_empty());
        let sent_at = match env.get("timestamp") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(unix_seconds(n.as_f64().unwrap_or(f64::NAN))?),
            Some(other) => {
                return Err(DecodeError::WrongType {
                    field: "timestamp",
                    expected: "a number",
                    found: json_type(other),
                })
            }
        };
        let id = msg_id.unwrap_or_else(|| derived_id(&topic, env.get("timestamp"), &body));
        // Whatever is left (timestamp, i, username, crypto, signature,
        // certificate, source_name, ...) is kept verbatim.
        if !env.is_empty() {
            headers.insert("fedmsg".to_owned(), Value::Object(env));
        }
        Ok(Message { id, topic, body, headers, sent_at, source: source.to_owned() })
    }

    /// Maps a fedora-messaging message (`fedora_messaging.message.dumps` /
    /// datagrepper v2 shape: `topic`, `headers`, `id`, `body`, `queue`, `priority`).
    pub fn from_fedora_messaging(mut m: Map<String, Value>, source: &str) -> Result<Message, DecodeError> {
        let topic = take_string(&mut m, "topic")?
            .ok_or(DecodeError::UnknownFormat { keys: m.keys().cloned().collect::<Vec<_>>().join(", ") })?;
        validate_topic(&topic)?;
        let body = take_object(&mut m, "body")?.unwrap_or_default();
        let headers = take_object(&mut m, "headers")?.unwrap_or_default();
        let sent_at = match headers.get("sent-at") {
            Some(Value::String(s)) => Some(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|e| DecodeError::BadTime { field: "headers.sent-at", value: format!("{s:?}: {e}") })?
                    .with_timezone(&Utc),
            ),
            _ => None,
        };
        let id = take_string(&mut m, "id")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| derived_id(&topic, headers.get("sent-at"), &body));
        Ok(Message { id, topic, body, headers, sent_at, source: source.to_owned() })
    }

    /// True if the publisher gave no id and relflow derived [`Message::id`]
    /// (loopabull compatibility leaves `msg_id` undefined then).
    pub fn has_derived_id(&self) -> bool {
        let time = match self.headers.get("fedmsg") {
            Some(Value::Object(env)) => env.get("timestamp"),
            _ => self.headers.get("sent-at"),
        };
        self.id == derived_id(&self.topic, time, &self.body)
    }

    /// The bytes relflow puts on its work queue.
    pub fn to_queue_payload(&self) -> Vec<u8> {
        // Serializing a struct of JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads what [`to_queue_payload`](Self::to_queue_payload) wrote. Bytes
    /// from another producer that do not fit are an error, which the worker
    /// turns into a dead letter with this reason.
    pub fn from_queue_payload(bytes: &[u8], max_bytes: usize) -> Result<Message, DecodeError> {
        let obj = parse_object(bytes, max_bytes)?;
        let msg: Message =
            serde_json::from_value(Value::Object(obj)).map_err(|e| DecodeError::BadPayload(e.to_string()))?;
        validate_topic(&msg.topic)?;
        Ok(msg)
    }

    /// Rebuilds the fedmsg envelope, for re-publishing. For a message that was
    /// decoded from an envelope this is the original envelope (plus a
    /// `msg_id` if it had none).
    pub fn to_fedmsg_envelope(&self) -> Value {
        let mut headers = self.headers.clone();
        let mut env = match headers.remove("fedmsg") {
            Some(Value::Object(extra)) => extra,
            _ => Map::new(),
        };
        env.insert("topic".into(), self.topic.clone().into());
        env.insert("msg".into(), Value::Object(self.body.clone()));
        env.insert("msg_id".into(), self.id.clone().into());
        if !env.contains_key("timestamp") {
            if let Some(t) = self.sent_at {
                env.insert("timestamp".into(), t.timestamp().into());
            }
        }
        if !headers.is_empty() {
            env.insert("headers".into(), Value::Object(headers));
        }
        Value::Object(env)
    }
}

fn parse_object(bytes: &[u8], max_bytes: usize) -> Result<Map<String, Value>, DecodeError> {
    if bytes.len() > max_bytes {
        return Err(DecodeError::TooLarge { size: bytes.len(), limit: max_bytes });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 { offset: e.valid_up_to() })?;
    if text.starts_with('\u{feff}') {
        // serde_json would say "expected value at line 1 column 1", which hides the cause.
        return Err(DecodeError::NotJson("it starts with a UTF-8 byte order mark (BOM); save it without one".into()));
    }
    match serde_json::from_str::<Value>(text).map_err(|e| DecodeError::NotJson(e.to_string()))? {
        Value::Object(obj) => Ok(obj),
        other => Err(DecodeError::NotAnObject { found: json_type(&other) }),
    }
}

fn take_string(obj: &mut Map<String, Value>, field: &'static str) -> Result<Option<String>, DecodeError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(DecodeError::WrongType { field, expected: "a string", found: json_type(&other) }),
    }
}

fn take_object(obj: &mut Map<String, Value>, field: &'static str) -> Result<Option<Map<String, Value>>, DecodeError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(DecodeError::WrongType { field, expected: "a JSON object", found: json_type(&other) }),
    }
}

fn unix_seconds(secs: f64) -> Result<DateTime<Utc>, DecodeError> {
    let bad = || DecodeError::BadTime { field: "timestamp", value: secs.to_string() };
    if !secs.is_finite() {
        return Err(bad());
    }
    let millis = (secs * 1000.0).round() as i64;
    let time = Utc.timestamp_millis_opt(millis).single().ok_or_else(bad)?;
    // RFC 3339 has four-digit years: chrono would write `+20000-01-01...`,
    // which no consumer of `sent_at` parses.
    if !(0..=9999).contains(&time.year()) {
        return Err(bad());
    }
    Ok(time)
}

/// An id for an event whose publisher gave none: a hash of what makes it
/// this event, so two copies of it get the same id and run once.
fn derived_id(topic: &str, time: Option<&Value>, body: &Map<String, Value>) -> String {
    let mut h = Sha256::new();
    h.update(topic.as_bytes());
    h.update(b"\n");
    h.update(time.map(Value::to_string).unwrap_or_default().as_bytes());
    h.update(b"\n");
    // serde_json maps are sorted by key, so this is canonical.
    h.update(Value::Object(body.clone()).to_string().as_bytes());
    format!("sha256:{}", hex::encode(h.finalize()))
}
