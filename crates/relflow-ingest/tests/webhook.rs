//! `POST /hooks/{name}` over real HTTP (curl), signed with HMAC-SHA256.

mod common;

use std::process::Command;

use common::*;
use relflow_core::config::ingest::{WebhookFormat, WebhookSource};
use serde_json::Value;

const SECRET: &str = "s3cret shared with the sender";

/// curl POSTs `body`; returns (status, JSON reply).
fn post(url: &str, body: &str, headers: &[(&str, String)]) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        body,
        url,
    ]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd.output().expect("curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (json, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_posts_are_queued_once_and_bad_signatures_get_401_with_a_reason() {
    let h = Harness::new();
    let secret_file = h.dir.path().join("hook.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let hook = WebhookSource {
        validate: Default::default(),
        name: "forge".into(),
        secret: None,
        secret_file: Some(secret_file),
        signature_header: "X-Hub-Signature-256".into(),
        format: WebhookFormat::Json,
        topic: None,
        id_header: Some("X-GitHub-Delivery".into()),
        timestamp_header: None,
        timestamp_tolerance: std::time::Duration::from_secs(300),
    };
    let app = relflow_ingest::webhook::router(&[hook], h.sink.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("{base}/hooks/forge");

    let body = r#"{"ref": "refs/heads/main", "repository": {"full_name": "releng/tools"}}"#;
    let sig = relflow_ingest::webhook::sign(SECRET.as_bytes(), body.as_bytes());
    let headers = [
        ("X-Hub-Signature-256", sig.clone()),
        ("X-GitHub-Delivery", "d-1".to_owned()),
        ("X-GitHub-Event", "push".to_owned()),
    ];
    let h2 = headers.clone();
    let url2 = url.clone();
    let (status, reply) = tokio::task::spawn_blocking(move || post(&url2, body, &h2)).await.unwrap();
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["id"], "webhook:forge:d-1");
    // The sender retries the same delivery: not queued again.
    let (h2, url2) = (headers.clone(), url.clone());
    let (status, reply) = tokio::task::spawn_blocking(move || post(&url2, body, &h2)).await.unwrap();
    assert_eq!((status, reply["outcome"].as_str()), (200, Some("duplicate")));
    // A captured request replayed with a fresh (unsigned) delivery id: still the same body.
    for fresh in ["d-2", "d-3"] {
        let (mut h2, url2) = (headers.clone(), url.clone());
        h2[1].1 = fresh.to_owned();
        let (status, reply) = tokio::task::spawn_blocking(move || post(&url2, body, &h2)).await.unwrap();
        assert_eq!((status, reply["outcome"].as_str()), (200, Some("duplicate")), "{reply}");
    }

    let cases = [
        (vec![], "no X-Hub-Signature-256 header"),
        (
            vec![("X-Hub-Signature-256", relflow_ingest::webhook::sign(b"wrong secret", body.as_bytes()))],
            "does not match",
        ),
        (vec![("X-Hub-Signature-256", "sha1=abcd".to_owned())], "malformed"),
    ];
    for (headers, words) in cases {
        let url2 = url.clone();
        let (status, reply) = tokio::task::spawn_blocking(move || post(&url2, body, &headers)).await.unwrap();
        assert_eq!(status, 401, "{reply}");
        assert_eq!(reply["check"], "hmac");
        assert!(reply["reason"].as_str().unwrap().contains(words), "{reply}");
    }
    // A correctly signed body that is not a JSON object: 400 with the reason.
    let bad = "[1, 2]";
    let headers = vec![("X-Hub-Signature-256", relflow_ingest::webhook::sign(SECRET.as_bytes(), bad.as_bytes()))];
    let url2 = url.clone();
    let (status, reply) = tokio::task::spawn_blocking(move || post(&url2, bad, &headers)).await.unwrap();
    assert_eq!(status, 400, "{reply}");
    let url2 = format!("{base}/hooks/nope");
    let (status, _) = tokio::task::spawn_blocking(move || post(&url2, body, &[])).await.unwrap();
    assert_eq!(status, 404);

    let queued = h.drain().await;
    assert_eq!(queued.len(), 1);
    let m = &queued[0];
    assert_eq!(m.topic, "relflow.webhook.forge");
    assert_eq!(m.body["repository"]["full_name"], "releng/tools");
    assert_eq!(m.headers["x-github-event"], "push");
    assert!(m.headers.get("x-hub-signature-256").is_none(), "the signature is not passed on");
    assert_eq!(m.source, "webhook:forge");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_timestamp_outside_the_tolerance_is_refused() {
    let h = Harness::new();
    let hook = WebhookSource {
        validate: Default::default(),
        name: "timed".into(),
        secret: Some(SECRET.into()),
        secret_file: None,
        signature_header: "X-Signature".into(),
        format: WebhookFormat::Json,
        topic: None,
        id_header: None,
        timestamp_header: Some("X-Signature-Timestamp".into()),
        timestamp_tolerance: std::time::Duration::from_secs(300),
    };
    let app = relflow_ingest::webhook::router(&[hook], h.sink.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/timed", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let send = |ts: i64, signed_ts: i64, body: &'static str| {
        let sig = relflow_ingest::webhook::sign(SECRET.as_bytes(), format!("{signed_ts}.{body}").as_bytes());
        let headers = vec![("X-Signature", sig), ("X-Signature-Timestamp", ts.to_string())];
        let url = url.clone();
        tokio::task::spawn_blocking(move || post(&url, body, &headers))
    };
    let (status, reply) = send(now, now, r#"{"n": 1}"#).await.unwrap();
    assert_eq!(status, 202, "{reply}");
    let (status, reply) = send(now - 3600, now - 3600, r#"{"n": 2}"#).await.unwrap();
    assert_eq!(status, 401, "{reply}");
    assert!(reply["reason"].as_str().unwrap().contains("timestamp_tolerance"), "{reply}");
    // A fresh timestamp on an old signature: the HMAC covers the timestamp.
    let (status, reply) = send(now, now - 3600, r#"{"n": 3}"#).await.unwrap();
    assert_eq!(status, 401, "{reply}");
    assert_eq!(h.drain().await.len(), 1);
}

#[tokio::test]
async fn same_fedmsg_envelope_twice_and_after_a_restart_is_queued_once() {
    let mut h = Harness::new();
    let bytes = std::fs::read(fixtures().join("fedmsg-crypto/x509_testcert_unicode_vector.json")).unwrap();
    let env = |b: &'static [u8]| relflow_ingest::Envelope {
        source: "fedmsg:t",
        bytes: b,
        require_signature: true,
        frame_topic: None,
    };
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    assert_eq!(h.sink.submit_envelope(env(bytes)).await.unwrap(), relflow_ingest::Outcome::Queued);
    assert_eq!(h.sink.submit_envelope(env(bytes)).await.unwrap(), relflow_ingest::Outcome::Duplicate);
    h.restart();
    assert_eq!(
        h.sink.submit_envelope(env(bytes)).await.unwrap(),
        relflow_ingest::Outcome::Duplicate,
        "a restarted bridge still dedupes"
    );
    assert_eq!(h.drain().await.len(), 1);
}
