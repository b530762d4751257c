//! fedora-messaging over real RabbitMQ (127.0.0.1:5672, guest/guest), each
//! test in its own vhost: messages published with the real
//! `fedora-messaging publish` CLI reach the work queue with their headers
//! and id, once; a bridge killed mid-stream loses nothing.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use relflow_core::config::ingest::AmqpSource as AmqpSourceConfig;
use relflow_ingest::amqp::AmqpSource;
use relflow_ingest::Outcome;
use relflow_queue::{SqliteQueue, SqliteQueueOptions, WorkQueue};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A throw-away vhost (deleted on drop) and what these tests do in it.
struct Vhost {
    vhost: relflow_testkit::Vhost,
}

impl Vhost {
    fn new() -> Vhost {
        Vhost { vhost: relflow_testkit::Vhost::new("ingest-test") }
    }

    fn url(&self) -> String {
        self.vhost.url()
    }

    /// Messages in `queue` (ready + unacked).
    fn depth(&self, queue: &str) -> Option<u64> {
        self.vhost.queues().into_iter().find(|q| q.name == queue).map(|q| q.ready + q.unacked)
    }

    /// The source's queue and binding, made before the bridge ever runs so
    /// the broker holds what is published meanwhile.
    async fn declare(&self, queue: &str, binding: &str) {
        let conn = Connection::connect(&self.url(), ConnectionProperties::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(
            queue.into(),
            QueueDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            queue.into(),
            "amq.topic".into(),
            binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        conn.close(200, "done".into()).await.unwrap();
    }

    fn publish(&self, dir: &std::path::Path, lines: &[String]) {
        self.vhost.fedora_messaging_publish(dir, lines);
    }
}

fn source_config(url: String, queue: &str) -> AmqpSourceConfig {
    AmqpSourceConfig {
        validate: Default::default(),
        name: "fm".into(),
        url,
        exchange: "amq.topic".into(),
        queue: Some(queue.into()),
        bindings: vec!["org.fedoraproject.#".into()],
        prefetch: 20,
        tls: None,
    }
}

/// A real fedora-messaging message from the fixtures, on one line, with `id`.
fn fixture_line(id: &str) -> String {
    let path = fixtures().join("messages/amqp/org.fedoraproject.prod.buildsys.rpm.sign.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["id"] = id.into();
    v.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn fedora_messaging_publish_arrives_with_headers_and_id_once() {
    let vhost = Vhost::new();
    let h = Harness::new();
    let mut events = h.sink.events();
    let queue = "relflow-bridge.fm";
    vhost.declare(queue, "org.fedoraproject.#").await;
    // The same message twice (two publishers, a retry): queued once. Then
    // the id reused for another build: a conflict, said out loud.
    let id = "4f3c8d2e-0000-4000-8000-relflowtest1";
    let mut reused: Value = serde_json::from_str(&fixture_line(id)).unwrap();
    reused["body"]["build"]["name"] = "not-glibc".into();
    vhost.publish(h.dir.path(), &[fixture_line(id), fixture_line(id), reused.to_string()]);

    let shutdown = CancellationToken::new();
    let source = Box::new(AmqpSource::new(source_config(vhost.url(), queue)));
    let bridge = relflow_ingest::run(vec![source], h.sink.clone(), shutdown.clone());
    let first = wait_event(&mut events, "the first copy", |e| e.id.as_deref() == Some(id)).await;
    assert_eq!(first.outcome, Outcome::Queued);
    let second = wait_event(&mut events, "the second copy", |e| e.id.as_deref() == Some(id)).await;
    assert_eq!(second.outcome, Outcome::Duplicate);
    let third = wait_event(&mut events, "the reused id", |e| e.id.as_deref() == Some(id)).await;
    let Outcome::Rejected { check, reason } = &third.outcome else { panic!("a conflict: {:?}", third.outcome) };
    assert_eq!(check, "id_conflict");
    assert!(reason.contains("with a different topic or body"), "{reason}");
    // All three left the upstream queue (the conflict rejected, not requeued).
    for _ in 0..300 {
        if vhost.depth(queue) == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(vhost.depth(queue), Some(0), "acked upstream once queued");
    shutdown.cancel();
    bridge.await.unwrap().unwrap();

    let queued = h.drain().await;
    assert_eq!(queued.len(), 1, "same id twice -> queued once");
    let m = &queued[0];
    assert_eq!(m.id, id);
    assert_eq!(m.topic, "org.fedoraproject.prod.buildsys.rpm.sign");
    assert_eq!(m.source, "amqp:fm");
    assert_eq!(m.body["build"]["name"], "glibc");
    assert!(m.headers["fedora_messaging_schema"].is_string(), "headers: {:?}", m.headers);
    assert!(m.headers["sent-at"].is_string(), "headers: {:?}", m.headers);
    assert!(m.sent_at.is_some(), "sent-at becomes sent_at");
}

/// Not a test on its own: the bridge process `a_killed_bridge_loses_nothing`
/// starts and SIGKILLs. Runs only with RELFLOW_TEST_CHILD_BRIDGE set.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "helper process for a_killed_bridge_loses_nothing"]
async fn child_bridge() {
    let Ok(spec) = std::env::var("RELFLOW_TEST_CHILD_BRIDGE") else { return };
    let spec: Value = serde_json::from_str(&spec).unwrap();
    let dir = std::path::PathBuf::from(spec["dir"].as_str().unwrap());
    let queue =
        std::sync::Arc::new(SqliteQueue::open(dir.join("relflow.sqlite3"), SqliteQueueOptions::default()).unwrap());
    let dedupe = relflow_ingest::Dedupe::open(&dir.join("ingest.sqlite3"), Duration::from_secs(3600)).unwrap();
    let sink = relflow_ingest::Sink::new(queue, dedupe, None, relflow_core::DEFAULT_MAX_MESSAGE_BYTES);
    let config = source_config(spec["url"].as_str().unwrap().into(), spec["queue"].as_str().unwrap());
    let shutdown = CancellationToken::new();
    relflow_ingest::run(vec![Box::new(AmqpSource::new(config))], sink, shutdown).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_bridge_loses_nothing_the_broker_held() {
    const N: usize = 300;
    let vhost = Vhost::new();
    let dir = tempfile::tempdir().unwrap();
    let queue_name = "relflow-bridge.fm";
    vhost.declare(queue_name, "org.fedoraproject.#").await;
    let ids: Vec<String> = (0..N).map(|i| format!("kill-test-{i:04}")).collect();
    vhost.publish(dir.path(), &ids.iter().map(|id| fixture_line(id)).collect::<Vec<_>>());
    assert_eq!(vhost.depth(queue_name), Some(N as u64));

    let work = SqliteQueue::open(dir.path().join("relflow.sqlite3"), SqliteQueueOptions::default()).unwrap();
    let spec = serde_json::json!({"dir": dir.path(), "url": vhost.url(), "queue": queue_name}).to_string();
    let start = || {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_bridge", "--ignored", "--nocapture", "--test-threads=1"])
            .env("RELFLOW_TEST_CHILD_BRIDGE", &spec)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Kill the first bridge as soon as it has queued something.
    let mut child = start();
    for _ in 0..600 {
        if work.depth().await.unwrap().ready > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after_kill = work.depth().await.unwrap().ready;
    assert!(after_kill > 0, "the first bridge queued nothing before it was killed");

    // A new bridge takes over what the broker still held.
    let mut child = start();
    for _ in 0..1200 {
        if work.depth().await.unwrap().ready >= N as u64 && vhost.depth(queue_name) == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let mut seen = Vec::new();
    while let Some(d) = work.claim(Duration::ZERO).await.unwrap() {
        seen.push(relflow_core::Message::from_queue_payload(&d.payload, usize::MAX).unwrap().id);
        work.ack(&d).await.unwrap();
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), N, "every message arrived (first bridge queued {after_kill} before SIGKILL)");
    // The only possible duplicate is the one message enqueued in the instant
    // between the work queue's confirm and the dedupe record (the worker
    // never re-runs it); the upstream redeliveries are all deduped.
    assert!(seen.len() <= N + 1, "{} queued for {N} messages", seen.len());
    assert_eq!(vhost.depth(queue_name), Some(0), "everything acked upstream");
}
