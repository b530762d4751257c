//! Never miss a fedmsg message: the real Python fedmsg publisher sends 500
//! signed messages while the bridge is stopped and started again twice;
//! relflow counts the gaps (by fedmsg's `i`) with their sizes, and a
//! backfill from Datagrepper queues exactly the messages the bridge missed.
//!
//! **Datagrepper here is a test server**, serving Datagrepper's documented
//! `/v2/search` JSON (`raw_messages`, `page`, `pages`, `total`; `start`,
//! `end`, `topic`, `page`, `rows_per_page`) from the envelopes the real
//! publisher sent. The real `datagrepper` needs `datanommer.models`, which
//! makes its table a TimescaleDB hypertable; the shared PostgreSQL has no
//! `timescaledb` extension (`pg_available_extensions`), and tests must not
//! reconfigure it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::Json;
use common::*;
use relflow_core::config::ingest::FedmsgSource;
use relflow_ingest::backfill::{self, Datagrepper, SignedTopics, Window};
use relflow_ingest::gaps::Gap;
use relflow_ingest::zmq::ZmqSource;
use relflow_ingest::{Outcome, Sink, SinkOptions};
use relflow_queue::{SqliteQueue, SqliteQueueOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const TOTAL: usize = 500;

/// A running `tests/py/fedmsg_sequence.py`.
struct Publisher {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Publisher {
    fn start(endpoint: &str) -> Publisher {
        let mut child = Command::new(python())
            .arg(script("fedmsg_sequence.py"))
            .arg(endpoint)
            .arg(keys())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python fedmsg publisher");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the publisher did not start");
        Publisher { child, stdin, stdout }
    }

    /// Publishes the next `n` messages; returns their envelopes.
    fn send(&mut self, n: usize) -> Vec<Value> {
        writeln!(self.stdin.as_mut().unwrap(), "{n}").unwrap();
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "the publisher died");
            if line.trim() == "sent" {
                return out;
            }
            out.push(serde_json::from_str(&line).unwrap());
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bridge "process": a fresh sink over the same data dir and queue, and
/// the fedmsg source feeding it.
struct Bridge {
    sink: Sink,
    events: tokio::sync::broadcast::Receiver<relflow_ingest::Event>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Bridge {
    fn start(options: &SinkOptions, queue: Arc<SqliteQueue>, endpoint: &str) -> Bridge {
        let sink = Sink::open(options, queue).unwrap();
        let events = sink.events();
        let source = Box::new(ZmqSource::new(FedmsgSource {
            name: "bus".into(),
            endpoints: vec![endpoint.into()],
            topics: vec!["org.fedoraproject.test.".into()],
            require_signature: true,
        }));
        let stop = CancellationToken::new();
        let task = relflow_ingest::run(vec![source], sink.clone(), stop.clone());
        Bridge { sink, events, stop, task }
    }

    /// The id of the next message this bridge queued, if one comes within `wait`.
    async fn next_queued(&mut self, wait: Duration) -> Option<String> {
        let got = tokio::time::timeout(wait, async {
            match self.events.recv().await {
                Ok(e) if e.outcome == Outcome::Queued => e.id,
                Ok(e) => panic!("only queued messages expected, got {e:?}"),
                Err(e) => panic!("event stream: {e}"),
            }
        });
        got.await.ok().flatten()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Publishes one message at a time until `bridge` receives one: ZeroMQ
/// drops what is sent before the subscription reached the publisher.
async fn connect(publisher: &mut Publisher, bridge: &mut Bridge, sent: &mut Vec<Value>, got: &mut BTreeSet<String>) {
    loop {
        sent.extend(publisher.send(1));
        if let Some(id) = bridge.next_queued(Duration::from_millis(300)).await {
            got.insert(id);
            return;
        }
    }
}

/// Publishes `n` and waits until the bridge has them all.
async fn send_all(
    publisher: &mut Publisher,
    bridge: &mut Bridge,
    n: usize,
    sent: &mut Vec<Value>,
    got: &mut BTreeSet<String>,
) {
    let batch = publisher.send(n);
    let mut want: BTreeSet<String> = batch.iter().map(|e| e["msg_id"].as_str().unwrap().to_owned()).collect();
    sent.extend(batch);
    while !want.is_empty() {
        let id = bridge.next_queued(PATIENCE).await.expect("a connected bridge receives every message");
        want.remove(&id);
        got.insert(id);
    }
}

/// The gaps `got` leaves in the stream `sent`, as (after, before, missing).
fn expected_gaps(sent: &[Value], got: &BTreeSet<String>) -> Vec<(u64, u64, u64)> {
    let seen: Vec<u64> =
        sent.iter().filter(|e| got.contains(e["msg_id"].as_str().unwrap())).map(|e| e["i"].as_u64().unwrap()).collect();
    seen.windows(2).filter(|w| w[1] > w[0] + 1).map(|w| (w[0], w[1], w[1] - w[0] - 1)).collect()
}

#[derive(serde::Deserialize)]
struct Search {
    start: f64,
    end: f64,
    page: usize,
    rows_per_page: usize,
}

/// Datagrepper's `/v2/search` over `messages` (see the module docs).
async fn datagrepper(messages: Vec<Value>) -> String {
    async fn search(State(all): State<Arc<Vec<Value>>>, Query(q): Query<Search>) -> Json<Value> {
        let hits: Vec<&Value> =
            all.iter().filter(|m| (q.start..=q.end).contains(&m["timestamp"].as_f64().unwrap())).collect();
        let rows = q.rows_per_page.clamp(1, 100);
        let pages = hits.len().div_ceil(rows);
        let page: Vec<&Value> = hits.iter().skip((q.page - 1) * rows).take(rows).copied().collect();
        Json(json!({"raw_messages": page, "count": page.len(), "page": q.page, "pages": pages, "total": hits.len()}))
    }
    let app = axum::Router::new().route("/v2/search", axum::routing::get(search)).with_state(Arc::new(messages));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn two_bridge_restarts_leave_counted_gaps_and_backfill_queues_exactly_the_missing_messages() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(SqliteQueue::open(dir.path().join("relflow.sqlite3"), SqliteQueueOptions::default()).unwrap());
    let options = SinkOptions {
        data_dir: dir.path().to_owned(),
        dedupe_window: Duration::from_secs(3600),
        fedmsg: Some(fedmsg_config()),
        max_message_bytes: relflow_core::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let mut publisher = Publisher::start(&endpoint);
    let (mut sent, mut got) = (Vec::new(), BTreeSet::new());

    for round in 0..3 {
        // A new bridge over the state the last one left (its SQLite files).
        let mut bridge = Bridge::start(&options, queue.clone(), &endpoint);
        connect(&mut publisher, &mut bridge, &mut sent, &mut got).await;
        let n = if round < 2 { 150 } else { TOTAL - sent.len() };
        send_all(&mut publisher, &mut bridge, n, &mut sent, &mut got).await;
        let last_sink = bridge.sink.clone();
        bridge.stop().await;
        if round < 2 {
            // Published while no bridge runs: lost, as on the real bus.
            sent.extend(publisher.send(60));
        } else {
            let gaps = last_sink.gaps().unwrap();
            let reported: Vec<(u64, u64, u64)> =
                gaps.recent(100).unwrap().iter().map(|g: &Gap| (g.after, g.before, g.missing)).collect();
            assert_eq!(reported, expected_gaps(&sent, &got), "one gap per bridge restart, with its size");
            let totals = gaps.totals().unwrap();
            assert_eq!(totals.gaps, 2);
            let sizes: u64 = reported.iter().map(|g| g.2).sum();
            assert_eq!(totals.missing, sizes);
            assert_eq!(totals.restarts, 0, "the producer never restarted");
        }
    }
    assert_eq!(sent.len(), TOTAL);
    let missed = TOTAL - got.len();
    assert!(missed >= 120, "each stop loses at least the 60 sent meanwhile: {missed}");

    // Backfill from "Datagrepper", through a new sink over the same state.
    let url = datagrepper(sent.clone()).await;
    let sink = Sink::open(&options, queue.clone()).unwrap();
    let ts = |e: &Value| e["timestamp"].as_f64().unwrap();
    let window = Window { start: ts(&sent[0]), end: ts(&sent[TOTAL - 1]), topics: vec![] };
    let signed = SignedTopics::from_sources(&[relflow_core::config::SourceConfig::Fedmsg(FedmsgSource {
        name: "bus".into(),
        endpoints: vec![endpoint.clone()],
        topics: vec!["org.fedoraproject.test.".into()],
        require_signature: true,
    })]);
    let mut pages = 0;
    let report =
        backfill::run(Datagrepper::new(&url), window.clone(), &sink, &signed, false, |_, _| pages += 1).await.unwrap();
    assert_eq!(
        (report.fetched, report.queued, report.already_seen, report.rejected),
        (500, missed as u64, got.len() as u64, 0)
    );
    assert_eq!(pages, 5, "500 messages are 5 pages of 100");
    assert_eq!(report.to_string(), format!("fetched 500, queued {missed} new, {} already seen", got.len()));

    // A second backfill finds nothing new.
    let again = backfill::run(Datagrepper::new(&url), window, &sink, &signed, false, |_, _| {}).await.unwrap();
    assert_eq!((again.queued, again.already_seen), (0, 500));

    // Every message is on the work queue exactly once.
    let h = Harness { dir, queue, sink };
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for m in h.drain().await {
        *count.entry(m.id).or_default() += 1;
    }
    let ids: BTreeSet<String> = sent.iter().map(|e| e["msg_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(count.keys().cloned().collect::<BTreeSet<_>>(), ids);
    assert!(count.values().all(|&n| n == 1), "a message queued twice: {count:?}");
}
