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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::*;
use relflow_core::config::ingest::FedmsgSource;
use relflow_core::config::{BackfillConfig, SourceConfig};
use relflow_ingest::auto::AutoBackfill;
use relflow_ingest::backfill::{self, Datagrepper, SignedTopics, Window};
use relflow_ingest::gaps::Gap;
use relflow_ingest::zmq::ZmqSource;
use relflow_ingest::{Outcome, Sink, SinkOptions};
use relflow_queue::{SqliteQueue, SqliteQueueOptions, WorkQueue};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const TOTAL: usize = 500;

/// The real Python fedmsg publisher (relflow_testkit's), its envelopes parsed.
struct Publisher(relflow_testkit::FedmsgPublisher);

impl Publisher {
    fn start(endpoint: &str) -> Publisher {
        Publisher(relflow_testkit::FedmsgPublisher::start(endpoint))
    }

    /// Publishes the next `n` messages; returns their envelopes.
    fn send(&mut self, n: usize) -> Vec<Value> {
        self.0.send(n).iter().map(|e| serde_json::from_str(e).unwrap()).collect()
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
        let source = Box::new(ZmqSource::new(bus(endpoint)));
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

/// The fedmsg source every bridge here runs.
fn bus(endpoint: &str) -> FedmsgSource {
    FedmsgSource {
        validate: Default::default(),
        name: "bus".into(),
        endpoints: vec![endpoint.into()],
        topics: vec!["org.fedoraproject.test.".into()],
        require_signature: true,
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

/// What "Datagrepper" has stored. A test holding the lock makes searches
/// wait until it has stored what was sent (the real one stores a message
/// a moment after it was sent).
type Store = Arc<tokio::sync::Mutex<Vec<Value>>>;

/// Datagrepper's `/v2/search` over `store` (see the module docs); its
/// first `failures` searches answer 503, as a Datagrepper being restarted.
async fn datagrepper(store: Store, failures: Arc<AtomicUsize>) -> String {
    type Failures = Arc<AtomicUsize>;
    async fn search(State((store, failures)): State<(Store, Failures)>, Query(q): Query<Search>) -> Response {
        if failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        let all = store.lock().await;
        let hits: Vec<&Value> =
            all.iter().filter(|m| (q.start..=q.end).contains(&m["timestamp"].as_f64().unwrap())).collect();
        let rows = q.rows_per_page.clamp(1, 100);
        let pages = hits.len().div_ceil(rows);
        let page: Vec<&Value> = hits.iter().skip((q.page - 1) * rows).take(rows).copied().collect();
        Json(json!({"raw_messages": page, "count": page.len(), "page": q.page, "pages": pages, "total": hits.len()}))
            .into_response()
    }
    let app = axum::Router::new().route("/v2/search", axum::routing::get(search)).with_state((store, failures));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn options(dir: &tempfile::TempDir, auto_backfill: Option<Arc<AutoBackfill>>) -> SinkOptions {
    SinkOptions {
        data_dir: dir.path().to_owned(),
        dedupe_window: Duration::from_secs(3600),
        fedmsg: Some(fedmsg_config()),
        max_message_bytes: relflow_core::DEFAULT_MAX_MESSAGE_BYTES,
        schema_dir: dir.path().join("schemas"),
        validate: Default::default(),
        auto_backfill,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_bridge_restarts_leave_counted_gaps_and_backfill_queues_exactly_the_missing_messages() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(SqliteQueue::open(dir.path().join("relflow.sqlite3"), SqliteQueueOptions::default()).unwrap());
    let options = options(&dir, None);
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
    let url = datagrepper(Arc::new(tokio::sync::Mutex::new(sent.clone())), Default::default()).await;
    let sink = Sink::open(&options, queue.clone()).unwrap();
    let ts = |e: &Value| e["timestamp"].as_f64().unwrap();
    let window = Window { start: ts(&sent[0]), end: ts(&sent[TOTAL - 1]), topics: vec![], prefixes: vec![] };
    let signed = SignedTopics::from_sources(&[SourceConfig::Fedmsg(bus(&endpoint))]);
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

/// `[backfill] on_gap`: the gap a restarted bridge sees is fetched at once,
/// for the source's topics only, through the intake (the messages around
/// it, already queued, are dropped as duplicates). Datagrepper fails the
/// first fetch: it is retried.
#[tokio::test(flavor = "multi_thread")]
async fn on_gap_fetches_the_gap_for_the_sources_topics_retrying_a_failed_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(SqliteQueue::open(dir.path().join("relflow.sqlite3"), SqliteQueueOptions::default()).unwrap());
    let store: Store = Default::default();
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let failures = Arc::new(AtomicUsize::new(1));
    let url = datagrepper(store.clone(), failures.clone()).await;
    let backfill = BackfillConfig { url, on_gap: true, on_start: None };
    let options = options(&dir, AutoBackfill::new(&backfill, &[SourceConfig::Fedmsg(bus(&endpoint))]));
    let mut publisher = Publisher::start(&endpoint);
    let (mut sent, mut got) = (Vec::new(), BTreeSet::new());

    let mut bridge = Bridge::start(&options, queue.clone(), &endpoint);
    connect(&mut publisher, &mut bridge, &mut sent, &mut got).await;
    send_all(&mut publisher, &mut bridge, 20, &mut sent, &mut got).await;
    bridge.stop().await;
    let lost = publisher.send(30);
    sent.extend(lost.clone());

    // Until the new bridge has its first message, "Datagrepper" is still
    // storing: the gap's search waits for it.
    let mut stored = store.lock().await;
    let elsewhere = json!({"topic": "org.fedoraproject.other.thing", "msg": {}, "msg_id": "other-topic",
                            "timestamp": lost[10]["timestamp"], "i": 1, "username": "someone"});
    stored.push(elsewhere);
    let mut bridge = Bridge::start(&options, queue.clone(), &endpoint);
    loop {
        sent.extend(publisher.send(1));
        if let Some(id) = bridge.next_queued(Duration::from_millis(300)).await {
            got.insert(id);
            break;
        }
    }
    stored.extend(sent.iter().cloned());
    drop(stored);
    let all: BTreeSet<String> = sent.iter().map(|e| e["msg_id"].as_str().unwrap().to_owned()).collect();
    // The window starts at the message before the gap, already queued.
    let mut duplicates = 0;
    while got != all {
        let event = tokio::time::timeout(PATIENCE, bridge.events.recv()).await;
        let event = event.expect("the lost messages, fetched by on_gap").unwrap();
        match event.outcome {
            Outcome::Queued => {
                got.insert(event.id.unwrap());
            }
            Outcome::Duplicate => duplicates += 1,
            other => panic!("{other:?}"),
        }
    }
    bridge.stop().await;
    assert_eq!(failures.load(Ordering::SeqCst), 0, "the first fetch was answered 503");
    assert!(duplicates >= 1, "the message before the gap is fetched and dropped as a duplicate");
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(d) = queue.claim(Duration::ZERO).await.unwrap() {
        *count.entry(relflow_core::Message::from_queue_payload(&d.payload, usize::MAX).unwrap().id).or_default() += 1;
        queue.ack(&d).await.unwrap();
    }
    drop(dir);
    assert_eq!(count.keys().cloned().collect::<BTreeSet<_>>(), all, "every message once, none of other topics");
    assert!(count.values().all(|&n| n == 1), "a message queued twice: {count:?}");
}

/// `[backfill] on_start`: the last DURATION, for the fedmsg sources' topics.
#[tokio::test(flavor = "multi_thread")]
async fn on_start_fetches_the_last_duration_for_the_fedmsg_sources_topics() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as f64;
    let envelope = |id: &str, topic: &str, ago: f64| json!({"topic": topic, "msg": {"n": id}, "msg_id": id, "timestamp": now - ago, "i": 0, "username": "u"});
    let store: Store = Arc::new(tokio::sync::Mutex::new(vec![
        envelope("recent-1", "org.fedoraproject.test.relflow.seq", 60.0),
        envelope("recent-2", "org.fedoraproject.test.relflow.seq", 300.0),
        envelope("an-hour-ago", "org.fedoraproject.test.relflow.seq", 3600.0),
        envelope("other-topic", "org.fedoraproject.other.thing", 60.0),
    ]));
    let backfill = BackfillConfig {
        url: datagrepper(store, Default::default()).await,
        on_gap: false,
        on_start: Some(Duration::from_secs(600)),
    };
    let source = FedmsgSource { require_signature: false, ..bus("tcp://127.0.0.1:1") };
    let auto = AutoBackfill::new(&backfill, &[SourceConfig::Fedmsg(source)]).unwrap();
    let h = Harness::new();
    let report = auto.start(&h.sink).await.expect("on_start is set").unwrap();
    assert_eq!((report.fetched, report.queued, report.skipped), (3, 2, 1), "{report}");
    let ids: BTreeSet<String> = h.drain().await.into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["recent-1".to_owned(), "recent-2".to_owned()].into());
    let again = auto.start(&h.sink).await.unwrap().unwrap();
    assert_eq!((again.queued, again.already_seen), (0, 2), "a second start queues nothing twice");
}
