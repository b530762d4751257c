//! fedmsg over real ZeroMQ: the real Python `fedmsg` library publishes (and
//! signs with the test keys) on a local socket; relflow's ZmqSource receives.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use common::*;
use relflow_core::config::ingest::FedmsgSource;
use relflow_ingest::zmq::ZmqSource;
use relflow_ingest::{Event, Outcome};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// A running `tests/py/fedmsg_publish.py`; dropping it stops it.
struct Publisher {
    child: Child,
    stdin: Option<ChildStdin>,
    /// (msg_id, topic) per case, in order.
    sent: Vec<(String, String)>,
}

impl Publisher {
    fn start(endpoint: &str, cases: Value) -> Publisher {
        let mut child = Command::new(python())
            .arg(script("fedmsg_publish.py"))
            .arg(endpoint)
            .arg(keys())
            .arg(cases.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python fedmsg publisher");
        let stdin = child.stdin.take();
        let mut sent = Vec::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if line == "ready" {
                break;
            }
            let v: Value = serde_json::from_str(&line).unwrap();
            sent.push((v["msg_id"].as_str().unwrap().to_owned(), v["topic"].as_str().unwrap().to_owned()));
        }
        assert_eq!(sent.len(), cases.as_array().unwrap().len(), "the publisher did not start");
        Publisher { child, stdin, sent }
    }

    fn id(&self, i: usize) -> String {
        self.sent[i].0.clone()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stdin.take(); // EOF: it stops publishing and exits
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn source(endpoint: &str) -> Box<ZmqSource> {
    Box::new(ZmqSource::new(FedmsgSource {
        validate: Default::default(),
        name: "test".into(),
        endpoints: vec![endpoint.into()],
        topics: vec!["org.fedoraproject.test.".into()],
        require_signature: true,
    }))
}

fn is(id: &str, e: &Event) -> bool {
    e.id.as_deref() == Some(id)
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_fedmsg_is_queued_once_and_bad_signatures_are_rejected_with_the_check() {
    let h = Harness::new();
    let mut events = h.sink.events();
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let publisher = Publisher::start(
        &endpoint,
        json!([
            {"topic": "compose.done", "msg": {"compose": "Fedora-Rawhide-20250101.n.0", "status": "FINISHED"}},
            {"topic": "compose.done", "msg": {"compose": "x"}, "tamper": true},
            {"topic": "compose.done", "msg": {"compose": "y"}, "cert": "dummy-revoked"},
            {"topic": "compose.done", "msg": {"compose": "z"}, "cert": "signed_by_expired_ca"},
            {"topic": "compose.done", "msg": {"compose": "w"}, "frame_topic": "org.fedoraproject.test.relflow.other"},
        ]),
    );
    let shutdown = CancellationToken::new();
    let bridge = relflow_ingest::run(vec![source(&endpoint)], h.sink.clone(), shutdown.clone());

    let good = publisher.id(0);
    let e = wait_event(&mut events, "the signed message", |e| is(&good, e)).await;
    assert_eq!(e.outcome, Outcome::Queued);
    let expect = [
        (1, "bad_signature", "signature does not match"),
        (2, "revoked", "revoked by the CRL"),
        (3, "untrusted_issuer", "not signed by the configured CA"),
        (4, "topic_mismatch", "topic frame"),
    ];
    for (i, check, words) in expect {
        let id = publisher.id(i);
        let e = wait_event(&mut events, check, |e| is(&id, e)).await;
        match &e.outcome {
            Outcome::Rejected { check: c, reason } => {
                assert_eq!(c, check, "case {i}: {reason}");
                assert!(reason.contains(words), "case {i}: reason {reason:?} should say {words:?}");
            }
            other => panic!("case {i} must be rejected, got {other:?}"),
        }
    }
    // The publisher re-sends every envelope until stopped: wait for a copy
    // of the good one to come back as a duplicate.
    let e = wait_event(&mut events, "a second copy", |e| is(&good, e)).await;
    assert_eq!(e.outcome, Outcome::Duplicate);
    drop(publisher);
    shutdown.cancel();
    bridge.await.unwrap().unwrap();

    let queued = h.drain().await;
    assert_eq!(queued.len(), 1, "only the valid message, once: {queued:?}");
    let m = &queued[0];
    assert_eq!(m.id, good);
    assert_eq!(m.topic, "org.fedoraproject.test.relflow.compose.done");
    assert_eq!(m.body["status"], "FINISHED");
    assert_eq!(m.source, "fedmsg:test");
    assert!(m.headers["fedmsg"]["signature"].is_string(), "the envelope fields are kept: {:?}", m.headers);
    // What we queued still verifies: the envelope is rebuilt byte for byte.
    let envelope = serde_json::to_vec(&m.to_fedmsg_envelope()).unwrap();
    h.sink.verifier().unwrap().verify(&envelope).expect("the queued envelope still verifies");
    let stats = h.sink.stats();
    assert_eq!(stats.queued, 1);
    assert!(stats.duplicates >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_subscriber_reconnects_when_the_publisher_restarts() {
    let h = Harness::new();
    let mut events = h.sink.events();
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let shutdown = CancellationToken::new();
    // The source starts first and waits for the publisher to appear.
    let bridge = relflow_ingest::run(vec![source(&endpoint)], h.sink.clone(), shutdown.clone());

    let first = Publisher::start(&endpoint, json!([{"topic": "a", "msg": {"n": 1}}]));
    let id = first.id(0);
    let e = wait_event(&mut events, "the first publisher's message", |e| is(&id, e)).await;
    assert_eq!(e.outcome, Outcome::Queued);
    drop(first);

    let second = Publisher::start(&endpoint, json!([{"topic": "b", "msg": {"n": 2}}]));
    let id = second.id(0);
    let e = wait_event(&mut events, "the restarted publisher's message", |e| is(&id, e)).await;
    assert_eq!(e.outcome, Outcome::Queued);
    drop(second);
    shutdown.cancel();
    bridge.await.unwrap().unwrap();
    let topics: Vec<String> = h.drain().await.into_iter().map(|m| m.topic).collect();
    assert_eq!(topics, ["org.fedoraproject.test.relflow.a", "org.fedoraproject.test.relflow.b"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_down_past_the_connect_timeout_is_retried_not_fatal() {
    let h = Harness::new();
    let mut events = h.sink.events();
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let shutdown = CancellationToken::new();
    let bridge = relflow_ingest::run(vec![source(&endpoint)], h.sink.clone(), shutdown.clone());
    // zeromq's own connect gives up after 30 s; the source must outlive that.
    tokio::time::sleep(std::time::Duration::from_secs(35)).await;
    assert!(!bridge.is_finished(), "the source gave up on a publisher that is down");
    // Reported as down (for /readyz and /metrics), with why.
    let links = h.sink.links();
    assert_eq!(links.len(), 1, "{links:?}");
    let down = &links[0];
    assert_eq!((down.source.as_str(), down.endpoint.as_str(), down.up), ("fedmsg:test", endpoint.as_str(), false));
    assert!(down.error.as_deref().is_some_and(|e| e.starts_with("cannot connect")), "{down:?}");

    let late = Publisher::start(&endpoint, json!([{"topic": "late", "msg": {"n": 1}}]));
    let id = late.id(0);
    let e = wait_event(&mut events, "the late publisher's message", |e| is(&id, e)).await;
    assert_eq!(e.outcome, Outcome::Queued);
    let up = &h.sink.links()[0];
    assert!(up.up && up.error.is_none() && up.since > down.since, "up again: {up:?}");
    drop(late);
    shutdown.cancel();
    bridge.await.unwrap().unwrap();
}
