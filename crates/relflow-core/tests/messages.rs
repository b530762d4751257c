//! Every real Fedora message in shared/fixtures decodes, and every way of
//! being malformed gets its own error.

use std::path::PathBuf;

use relflow_core::{DecodeError, Message, DEFAULT_MAX_MESSAGE_BYTES as MAX};
use relflow_testkit::fixtures_dir as fixtures;
use serde_json::{json, Value};

fn fixture_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(fixtures().join(dir))
        .expect("shared/fixtures next to the repo")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_fedmsg_fixture_decodes_with_its_topic() {
    let files = fixture_files("messages");
    assert!(files.len() >= 20, "expected the fixture set, found {}", files.len());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let msg = Message::decode(&bytes, "fedmsg", MAX).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // File name = `<topic>[--<qualifier>].json`.
        let name = path.file_stem().unwrap().to_str().unwrap();
        let topic = name.split("--").next().unwrap();
        assert_eq!(msg.topic, topic, "{}", path.display());
        assert!(!msg.id.is_empty());
        let original: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(Value::Object(msg.body.clone()), original["msg"], "{}: body is `msg`", path.display());
        if let Some(id) = original.get("msg_id").and_then(Value::as_str) {
            assert_eq!(msg.id, id);
            // With an id, re-publishing rebuilds the exact envelope.
            assert_eq!(msg.to_fedmsg_envelope(), original, "{}", path.display());
        }
        // The queue form round-trips.
        assert_eq!(Message::from_queue_payload(&msg.to_queue_payload(), MAX).unwrap(), msg);
    }
}

#[test]
fn every_fedora_messaging_fixture_decodes_with_headers_and_id() {
    let files = fixture_files("messages/amqp");
    assert!(!files.is_empty());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let original: Value = serde_json::from_slice(&bytes).unwrap();
        let msg = Message::decode(&bytes, "amqp", MAX).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(msg.id, original["id"].as_str().unwrap());
        assert_eq!(msg.topic, original["topic"].as_str().unwrap());
        assert_eq!(Value::Object(msg.body), original["body"]);
        assert_eq!(msg.headers["fedora_messaging_schema"], original["headers"]["fedora_messaging_schema"]);
        let sent = original["headers"]["sent-at"].as_str().unwrap();
        assert_eq!(msg.sent_at.unwrap(), chrono::DateTime::parse_from_rfc3339(sent).unwrap());
    }
}

#[test]
fn signed_envelope_keeps_signature_fields_for_republishing() {
    let path = fixtures().join("messages/org.fedoraproject.prod.buildsys.tag--signed.json");
    let msg = Message::decode(&std::fs::read(path).unwrap(), "fedmsg", MAX).unwrap();
    let fedmsg = msg.headers["fedmsg"].as_object().unwrap();
    for key in ["signature", "certificate", "crypto", "i", "username", "timestamp"] {
        assert!(fedmsg.contains_key(key), "headers.fedmsg.{key}");
    }
    assert!(msg.sent_at.is_some());
}

#[test]
fn missing_msg_id_gets_a_stable_derived_id() {
    let path = fixtures().join("messages/org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json");
    let bytes = std::fs::read(path).unwrap();
    let a = Message::decode(&bytes, "cli", MAX).unwrap();
    let b = Message::decode(&bytes, "cli", MAX).unwrap();
    assert!(a.id.starts_with("sha256:"));
    assert_eq!(a.id, b.id, "the same event must get the same id");
    let other = br#"{"topic": "org.fedoraproject.prod.pungi.compose.status.change", "msg": {"status": "STARTED"}, "timestamp": 1}"#;
    assert_ne!(Message::decode(other, "cli", MAX).unwrap().id, a.id);
}

fn err(bytes: &[u8]) -> DecodeError {
    Message::decode(bytes, "test", MAX).expect_err("must be rejected")
}

#[test]
fn malformed_input_gets_a_typed_error_naming_the_problem() {
    assert!(matches!(err(b"not json"), DecodeError::NotJson(_)));
    assert_eq!(err(b"[1, 2]"), DecodeError::NotAnObject { found: "an array" });
    assert_eq!(err(b"\"str\""), DecodeError::NotAnObject { found: "a string" });
    assert_eq!(err(b"{\"topic\": \"a\xff\"}"), DecodeError::InvalidUtf8 { offset: 12 });
    assert!(matches!(err(br#"{"topic": "a.b"}"#), DecodeError::UnknownFormat { .. }));
    assert!(matches!(err(br#"{"msg": {}}"#), DecodeError::UnknownFormat { .. }), "no topic");
    assert_eq!(
        err(br#"{"topic": "a.b", "msg": "x"}"#),
        DecodeError::WrongType { field: "msg", expected: "a JSON object", found: "a string" }
    );
    assert_eq!(
        err(br#"{"topic": "a.b", "body": [1]}"#),
        DecodeError::WrongType { field: "body", expected: "a JSON object", found: "an array" }
    );
    assert_eq!(
        err(br#"{"topic": 7, "msg": {}}"#),
        DecodeError::WrongType { field: "topic", expected: "a string", found: "a number" }
    );
    assert!(matches!(err(br#"{"topic": "a..b", "msg": {}}"#), DecodeError::BadTopic { .. }));
    assert!(matches!(err(br#"{"topic": "a.#", "msg": {}}"#), DecodeError::BadTopic { .. }));
    assert!(matches!(
        err(br#"{"topic": "a.b", "msg": {}, "timestamp": "yesterday"}"#),
        DecodeError::WrongType { field: "timestamp", .. }
    ));
    let big = format!(r#"{{"topic": "a.b", "msg": {{"x": "{}"}}}}"#, "y".repeat(MAX));
    assert!(matches!(Message::decode(big.as_bytes(), "t", MAX), Err(DecodeError::TooLarge { limit: MAX, .. })));
    // Messages name the problem in words.
    assert!(err(b"[1]").to_string().contains("must be a JSON object"));
    let bom = err(b"\xef\xbb\xbf{\"topic\": \"a.b\", \"msg\": {}}").to_string();
    assert!(bom.contains("byte order mark"), "{bom}");
    let long = format!(r#"{{"topic": "a..{}", "msg": {{}}}}"#, "x".repeat(10_000));
    let e = err(long.as_bytes()).to_string();
    assert!(e.len() < 500 && e.contains("longer than 255"), "{} bytes: {}", e.len(), &e[..200]);
    for absurd in ["1e15", "-1e14", "253402300800"] {
        let text = format!(r#"{{"topic": "a.b", "msg": {{}}, "timestamp": {absurd}}}"#);
        assert!(matches!(err(text.as_bytes()), DecodeError::BadTime { field: "timestamp", .. }), "{absurd}");
    }
    let ok = Message::decode(br#"{"topic": "a.b", "msg": {}, "timestamp": 253402300799}"#, "t", MAX).unwrap();
    assert_eq!(ok.sent_at.unwrap().to_rfc3339(), "9999-12-31T23:59:59+00:00");
}

#[test]
fn queue_payload_from_a_stranger_is_rejected_not_panicked_on() {
    assert!(matches!(Message::from_queue_payload(b"\xff\xfe", MAX), Err(DecodeError::InvalidUtf8 { .. })));
    let e = Message::from_queue_payload(json!({"topic": "a.b"}).to_string().as_bytes(), MAX).unwrap_err();
    assert!(matches!(e, DecodeError::BadPayload(_)), "{e}");
}
