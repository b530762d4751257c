//! The [`WorkQueue`] delivery contract (the docs of `relflow-queue/src/lib.rs`),
//! checked with the same test bodies on both backends: the embedded SQLite
//! queue on a real file, and the RabbitMQ queue on a real broker (a vhost of
//! its own on the shared one, or a node of its own for the test that kills
//! the broker).
//!
//! Each body gets a [`Backend`] and opens workers on it: several handles on
//! one queue, as several worker processes would have. Where the backends
//! differ on purpose, [`Differences`] says how and why, and the bodies check
//! each backend against what it says; nothing else may differ.
//!
//! No timing assertions: a claim that must find something waits up to
//! [`WAIT`]; one that must find nothing looks for [`NOTHING`], which is long
//! enough for a wrong delivery to show up, and nothing is asserted about how
//! quickly anything happened. The one time bound is a lower one: a retry
//! never comes back before its delay.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use relflow_amqp::{AmqpQueue, AmqpQueueOptions};
use relflow_queue::{Delivery, QueueDepth, SqliteQueue, SqliteQueueOptions, WorkQueue};
use relflow_testkit::{RabbitNode, Vhost};

/// Long enough for anything that should arrive.
const WAIT: Duration = Duration::from_secs(20);
/// How long a claim looks when nothing may be handed out.
const NOTHING: Duration = Duration::from_millis(500);
/// The embedded queue's lease for workers that are not about to crash:
/// longer than any test, so a lease never runs out by accident.
const LONG_LEASE: Duration = Duration::from_secs(600);

type Queue = Arc<dyn WorkQueue>;

/// How the backends differ, on purpose, where the contract leaves room.
struct Differences {
    /// `depth().in_flight` counts every worker's deliveries (embedded: the
    /// leases are rows in the shared file), not only this handle's.
    /// RabbitMQ's passive declare reports ready messages only; unacked ones
    /// are visible through the management API alone, so each process counts
    /// what it holds.
    in_flight_is_global: bool,
    /// `depth().delayed` counts retries with any delay. RabbitMQ keeps one
    /// delay queue per delay, so a handle counts the delays it knows: its
    /// `retry_delays` and the ones it retried with itself.
    delayed_is_global: bool,
    /// Settling a delivery a second time is an error. The embedded queue
    /// fences it instead (the row or its (attempt, deliveries) is gone) and
    /// returns Ok; either way nothing else is touched.
    settling_twice_is_an_error: bool,
    /// A released payload goes to any worker at once. On RabbitMQ the
    /// release is a requeue, and the broker hands the payload straight back
    /// to the releasing handle's consumer if its prefetch has room; other
    /// workers get it once that handle closes (each such push counts as a
    /// delivery). relflow's worker releases only while shutting down, and
    /// exits right after, so there it reaches another worker then.
    release_reaches_other_workers_at_once: bool,
}

/// Where the queue lives, kept for as long as the test runs.
enum Kind {
    Sqlite(tempfile::TempDir),
    Rabbitmq { url: String, _vhost: Option<Vhost>, node: Option<RabbitNode> },
}

/// One queue for one test, on one backend, and how to open workers on it.
struct Backend {
    kind: Kind,
    differences: Differences,
}

impl Backend {
    fn sqlite() -> Backend {
        Backend {
            kind: Kind::Sqlite(tempfile::tempdir().unwrap()),
            differences: Differences {
                in_flight_is_global: true,
                delayed_is_global: true,
                settling_twice_is_an_error: false,
                release_reaches_other_workers_at_once: true,
            },
        }
    }

    fn rabbitmq(url: String, vhost: Option<Vhost>, node: Option<RabbitNode>) -> Backend {
        Backend {
            kind: Kind::Rabbitmq { url, _vhost: vhost, node },
            differences: Differences {
                in_flight_is_global: false,
                delayed_is_global: false,
                settling_twice_is_an_error: true,
                release_reaches_other_workers_at_once: false,
            },
        }
    }

    /// A vhost of its own on the shared broker.
    fn rabbitmq_vhost() -> Backend {
        let vhost = Vhost::new("queue-contract");
        Backend::rabbitmq(vhost.url(), Some(vhost), None)
    }

    /// A broker of its own, for the test that kills it.
    fn rabbitmq_node() -> Backend {
        let node = RabbitNode::start();
        Backend::rabbitmq(node.url(), None, Some(node))
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Sqlite(_) => "embedded",
            Kind::Rabbitmq { .. } => "rabbitmq",
        }
    }

    /// A new worker on the queue.
    async fn worker(&self) -> Queue {
        self.worker_with_lease(LONG_LEASE).await
    }

    /// A new worker whose claims the embedded queue leases for `lease`
    /// (its `visibility_timeout`). RabbitMQ has no lease: a delivery stays
    /// with its consumer for as long as the connection lives.
    async fn worker_with_lease(&self, lease: Duration) -> Queue {
        match &self.kind {
            Kind::Sqlite(dir) => {
                let opts = SqliteQueueOptions { visibility_timeout: lease, poll_interval: Duration::from_millis(20) };
                Arc::new(SqliteQueue::open(dir.path().join("queue.sqlite3"), opts).unwrap())
            }
            Kind::Rabbitmq { url, .. } => {
                let opts = AmqpQueueOptions {
                    url: url.clone(),
                    connection_name: "relflow queue contract".into(),
                    ..AmqpQueueOptions::default()
                };
                Arc::new(AmqpQueue::connect(opts).await.unwrap())
            }
        }
    }

    /// Takes the whole backend down hard and brings it back: nothing but
    /// what it made durable may survive. Embedded: every handle is already
    /// dropped, and the file is all there is. RabbitMQ: SIGKILL the node
    /// (only a backend with its own node can do this).
    async fn crash_and_restart(&mut self) {
        if let Kind::Rabbitmq { node, .. } = &mut self.kind {
            let mut node = node.take().expect("a backend with a node of its own");
            // Blocking for seconds: off the runtime's threads.
            let node = tokio::task::spawn_blocking(move || {
                node.kill_9();
                node.restart();
                node
            })
            .await
            .unwrap();
            self.kind = Kind::Rabbitmq { url: node.url(), _vhost: None, node: Some(node) };
        }
    }
}

async fn claim(q: &Queue) -> Delivery {
    q.claim(WAIT).await.unwrap().expect("a delivery within the wait")
}

async fn assert_nothing_for(q: &Queue, why: &str) {
    if let Some(d) = q.claim(NOTHING).await.unwrap() {
        panic!("{why}, but got {:?} (attempt {}, delivery {})", d.payload, d.attempt, d.deliveries);
    }
}

fn depth(ready: u64, in_flight: u64, delayed: u64, dead: u64) -> QueueDepth {
    QueueDepth { ready, in_flight, delayed, dead }
}

/// Each contract test, once per backend. `own_node` tests kill the broker,
/// so on RabbitMQ they get one of their own.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name(super::Backend::sqlite()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rabbitmq() {
                super::$name(super::Backend::rabbitmq_vhost()).await;
            }
        }
    )*};
    (own_node: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name(super::Backend::sqlite()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rabbitmq() {
                super::$name(super::Backend::rabbitmq_node()).await;
            }
        }
    )*};
}

contract!(own_node: enqueue_returns_once_durable);
contract!(
    a_claim_goes_to_one_worker_only,
    many_workers_never_share_a_delivery,
    claim_many_hands_out_each_payload_once,
    ack_removes_it_for_good,
    retry_comes_back_after_its_delay_with_the_next_attempt,
    dead_letter_parks_it_with_reason_and_attempt,
    release_hands_it_back_without_counting_an_attempt,
    a_crashed_workers_delivery_comes_back,
    keep_alive_holds_a_long_run,
    depth_counts_each_state,
    dead_letters_are_listed_oldest_first_up_to_the_limit,
    replay_is_a_fresh_first_attempt,
    purge_counts_what_it_deletes,
    payloads_are_opaque_bytes,
    a_waiting_claim_gets_a_later_enqueue,
    settling_twice_touches_nothing_else,
);

async fn enqueue_returns_once_durable(mut b: Backend) {
    let q = b.worker().await;
    q.enqueue(b"one").await.unwrap();
    q.enqueue(b"two").await.unwrap();
    // Nothing of this process's state survives: only what `enqueue` made
    // durable before it returned.
    drop(q);
    b.crash_and_restart().await;

    let q = b.worker().await;
    let mut got = BTreeSet::new();
    for _ in 0..2 {
        let d = claim(&q).await;
        assert_eq!((d.attempt, d.deliveries), (1, 1), "{}: never handed out before", b.name());
        got.insert(d.payload.clone());
        q.ack(&d).await.unwrap();
    }
    assert_eq!(got, BTreeSet::from([b"one".to_vec(), b"two".to_vec()]));
    assert_nothing_for(&q, "both were acked").await;
}

async fn a_claim_goes_to_one_worker_only(b: Backend) {
    let (first, second) = (b.worker().await, b.worker().await);
    first.enqueue(b"x").await.unwrap();
    let x = claim(&first).await;
    assert_eq!((x.payload.as_slice(), x.attempt, x.deliveries), (&b"x"[..], 1, 1));
    assert_nothing_for(&second, "the only payload is held by another worker").await;

    second.enqueue(b"y").await.unwrap();
    let y = claim(&second).await;
    assert_eq!(y.payload, b"y");
    first.ack(&x).await.unwrap();
    second.ack(&y).await.unwrap();
    assert_nothing_for(&first, "both were acked").await;
}

async fn many_workers_never_share_a_delivery(b: Backend) {
    const N: usize = 60;
    let producer = b.worker().await;
    for i in 0..N as u32 {
        producer.enqueue(&i.to_be_bytes()).await.unwrap();
    }
    let taken = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let (q, taken, seen) = (b.worker().await, Arc::clone(&taken), Arc::clone(&seen));
        workers.push(tokio::spawn(async move {
            // Until everything is taken: a worker that finds nothing for a
            // moment keeps looking, so a slow broker cannot end it early.
            while taken.load(Ordering::SeqCst) < N {
                if let Some(d) = q.claim(Duration::from_millis(200)).await.unwrap() {
                    seen.lock().unwrap().push(u32::from_be_bytes(d.payload.as_slice().try_into().unwrap()));
                    q.ack(&d).await.unwrap();
                    taken.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for w in workers {
        tokio::time::timeout(Duration::from_secs(120), w).await.expect("the workers took everything").unwrap();
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, (0..N as u32).collect::<Vec<_>>(), "each payload handed out exactly once");
}

/// Two workers taking several at a time (the backend decides how many,
/// 1..=max): every payload once, each a first delivery.
async fn claim_many_hands_out_each_payload_once(b: Backend) {
    const N: u32 = 10;
    let (first, second) = (b.worker().await, b.worker().await);
    for i in 0..N {
        first.enqueue(&i.to_be_bytes()).await.unwrap();
    }
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < N as usize && std::time::Instant::now() < deadline {
        for (q, max) in [(&first, 4), (&second, 100)] {
            let batch = q.claim_many(max, Duration::from_millis(200)).await.unwrap();
            assert!(batch.len() <= max, "{}: {} for a max of {max}", b.name(), batch.len());
            for d in batch {
                assert_eq!((d.attempt, d.deliveries), (1, 1), "{}", b.name());
                seen.push(u32::from_be_bytes(d.payload.as_slice().try_into().unwrap()));
                q.ack(&d).await.unwrap();
            }
        }
    }
    seen.sort();
    assert_eq!(seen, (0..N).collect::<Vec<_>>(), "{}: each payload handed out exactly once", b.name());
    assert!(first.claim_many(5, NOTHING).await.unwrap().is_empty(), "all were acked");
}

async fn ack_removes_it_for_good(b: Backend) {
    let q = b.worker().await;
    q.enqueue(b"done").await.unwrap();
    let d = claim(&q).await;
    q.ack(&d).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
    assert_nothing_for(&q, "it was acked").await;
    // Not hidden from this handle only: a new worker does not get it either.
    drop(q);
    assert_nothing_for(&b.worker().await, "it was acked").await;
}

async fn retry_comes_back_after_its_delay_with_the_next_attempt(b: Backend) {
    let q = b.worker().await;
    q.enqueue(b"flaky").await.unwrap();
    let first = claim(&q).await;
    assert_eq!((first.attempt, first.deliveries), (1, 1));

    let delay = Duration::from_secs(2);
    let retried_at = Instant::now();
    // The reason is stored with the retried copy (the embedded queue's
    // `last_error`, RabbitMQ's `x-relflow-reason` header), but the trait has
    // no way to read it back before the payload is dead-lettered, so the
    // contract cannot check it here.
    q.retry(&first, delay, "exit status 2").await.unwrap();
    assert_eq!(q.depth().await.unwrap(), depth(0, 0, 1, 0), "{}: waiting for its delay", b.name());

    let second = claim(&q).await;
    assert!(retried_at.elapsed() >= delay, "came back before its delay: {:?}", retried_at.elapsed());
    assert_eq!(second.payload, b"flaky");
    // A new attempt, and its first handout (the earlier one finished).
    assert_eq!((second.attempt, second.deliveries), (2, 1), "{}", b.name());

    q.retry(&second, Duration::from_millis(200), "still exit status 2").await.unwrap();
    let third = claim(&q).await;
    assert_eq!((third.attempt, third.deliveries), (3, 1), "{}", b.name());
    q.ack(&third).await.unwrap();
    assert_eq!(q.depth().await.unwrap().pending(), 0);
}

async fn dead_letter_parks_it_with_reason_and_attempt(b: Backend) {
    let q = b.worker().await;
    q.enqueue(b"poison").await.unwrap();
    q.enqueue(b"tired").await.unwrap();
    let before = Utc::now();
    let mut parked = Vec::new();
    for _ in 0..2 {
        let d = claim(&q).await;
        if d.payload == b"poison" {
            q.dead_letter(&d, "undecodable message").await.unwrap();
            parked.push((d.payload.clone(), "undecodable message", 1));
        } else {
            q.retry(&d, Duration::ZERO, "exit status 2").await.unwrap();
            let again = claim(&q).await;
            assert_eq!((again.payload.as_slice(), again.attempt), (&b"tired"[..], 2));
            q.dead_letter(&again, "retries exhausted").await.unwrap();
            parked.push((again.payload.clone(), "retries exhausted", 2));
        }
    }
    assert_nothing_for(&q, "both are dead letters").await;
    assert_eq!(q.depth().await.unwrap(), depth(0, 0, 0, 2), "{}", b.name());

    let letters = q.dead_letters(10).await.unwrap();
    let got: Vec<(Vec<u8>, &str, u32)> =
        letters.iter().map(|l| (l.payload.clone(), l.reason.as_str(), l.attempt)).collect();
    assert_eq!(got, parked, "{}: payload, reason and the attempt that failed last", b.name());
    // Stored to the millisecond: compare with a second's slack either side.
    let after = Utc::now();
    for l in &letters {
        assert!(
            l.dead_at >= before - chrono::Duration::seconds(1) && l.dead_at <= after + chrono::Duration::seconds(1)
        );
    }
}

async fn release_hands_it_back_without_counting_an_attempt(b: Backend) {
    let (first, second) = (b.worker().await, b.worker().await);
    first.enqueue(b"shutting down").await.unwrap();
    let d = claim(&first).await;
    assert_eq!((d.attempt, d.deliveries), (1, 1));
    first.release(&d).await.unwrap();
    assert_eq!(first.depth().await.unwrap().in_flight, 0);

    // Claimable again at once: the same attempt, one more delivery.
    let again = claim(&first).await;
    assert_eq!((again.payload.as_slice(), again.attempt, again.deliveries), (&b"shutting down"[..], 1, 2));
    first.release(&again).await.unwrap();

    // By another worker too; on RabbitMQ once the releasing one is gone
    // (see Differences), as relflow's worker is right after releasing.
    let other_at_once = b.differences.release_reaches_other_workers_at_once;
    if !other_at_once {
        drop(first);
    }
    let third = claim(&second).await;
    assert_eq!((third.payload.as_slice(), third.attempt), (&b"shutting down"[..], 1), "{}", b.name());
    if other_at_once {
        assert_eq!(third.deliveries, 3);
    } else {
        // 3, or 4 if the broker pushed it to the closing consumer again.
        assert!(third.deliveries >= 3, "{}: delivery {}", b.name(), third.deliveries);
    }
    second.ack(&third).await.unwrap();
    assert_nothing_for(&second, "it was acked").await;
}

async fn a_crashed_workers_delivery_comes_back(b: Backend) {
    // The embedded queue notices a dead worker when its lease runs out; a
    // short one keeps the test short. RabbitMQ notices the closed connection.
    let doomed = b.worker_with_lease(Duration::from_secs(2)).await;
    let survivor = b.worker().await;
    doomed.enqueue(b"run me").await.unwrap();
    let held = claim(&doomed).await;
    assert_eq!((held.attempt, held.deliveries), (1, 1));

    // The worker dies: its handle (and connection) go away, no settle.
    drop(doomed);
    let d = claim(&survivor).await;
    assert_eq!(d.payload, b"run me");
    assert_eq!((d.attempt, d.deliveries), (1, 2), "{}: a crash is not an attempt, but it is a delivery", b.name());
    survivor.ack(&d).await.unwrap();
    assert_nothing_for(&survivor, "it was acked").await;
}

async fn keep_alive_holds_a_long_run(b: Backend) {
    // Renewed well within the lease (a quarter of it), for twice the lease.
    let lease = Duration::from_secs(2);
    let (runner, other) = (b.worker_with_lease(lease).await, b.worker().await);
    runner.enqueue(b"long playbook").await.unwrap();
    let d = claim(&runner).await;
    let until = Instant::now() + lease * 2;
    while Instant::now() < until {
        tokio::time::sleep(lease / 4).await;
        runner.keep_alive(&d).await.unwrap();
    }
    assert_nothing_for(&other, "its worker keeps it alive").await;
    runner.ack(&d).await.unwrap();
}

async fn depth_counts_each_state(b: Backend) {
    let (q, other) = (b.worker().await, b.worker().await);
    for p in [&b"a"[..], b"b", b"c", b"d"] {
        q.enqueue(p).await.unwrap();
    }
    assert_eq!(q.depth().await.unwrap(), depth(4, 0, 0, 0));
    let delayed = claim(&q).await;
    q.retry(&delayed, Duration::from_secs(3600), "later").await.unwrap();
    let dead = claim(&q).await;
    q.dead_letter(&dead, "never").await.unwrap();
    let held = claim(&q).await;
    assert_eq!(q.depth().await.unwrap(), depth(1, 1, 1, 1), "{}: one of each, seen by the worker", b.name());

    let d = &b.differences;
    let seen_elsewhere = other.depth().await.unwrap();
    assert_eq!(
        seen_elsewhere,
        depth(1, u64::from(d.in_flight_is_global), u64::from(d.delayed_is_global), 1),
        "{}: seen by another handle (see Differences)",
        b.name()
    );

    q.ack(&held).await.unwrap();
    let after = q.depth().await.unwrap();
    // Not `ready`: once the ack frees the consumer's prefetch, RabbitMQ
    // pushes the last payload to this handle's consumer, where it is
    // neither ready (for the broker) nor claimed (for this handle) until the
    // next claim. When that push lands is up to the broker.
    assert_eq!((after.in_flight, after.delayed, after.dead), (0, 1, 1), "{}", b.name());
    let last = claim(&q).await;
    q.ack(&last).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), depth(0, 0, 1, 1));
}

async fn dead_letters_are_listed_oldest_first_up_to_the_limit(b: Backend) {
    let q = b.worker().await;
    for p in [&b"p0"[..], b"p1", b"p2"] {
        q.enqueue(p).await.unwrap();
    }
    let mut order = Vec::new();
    for i in 0..3 {
        let d = claim(&q).await;
        q.dead_letter(&d, &format!("reason {i}")).await.unwrap();
        order.push((d.payload.clone(), format!("reason {i}")));
    }
    let listed = q.dead_letters(10).await.unwrap();
    let got: Vec<(Vec<u8>, String)> = listed.iter().map(|l| (l.payload.clone(), l.reason.clone())).collect();
    assert_eq!(got, order, "{}: oldest first", b.name());
    assert!(listed.windows(2).all(|w| w[0].dead_at <= w[1].dead_at));
    assert_eq!(listed.iter().map(|l| l.id).collect::<BTreeSet<_>>().len(), 3, "distinct ids");

    // Listing does not consume: the same answer again, and `limit` keeps
    // the oldest.
    let again = q.dead_letters(10).await.unwrap();
    assert_eq!(again.iter().map(|l| l.id).collect::<Vec<_>>(), listed.iter().map(|l| l.id).collect::<Vec<_>>());
    let two = q.dead_letters(2).await.unwrap();
    assert_eq!(two.iter().map(|l| l.id).collect::<Vec<_>>(), listed[..2].iter().map(|l| l.id).collect::<Vec<_>>());
    assert!(q.dead_letters(0).await.unwrap().is_empty(), "at most 0");
    assert_eq!(q.depth().await.unwrap().dead, 3, "{}: listing put everything back", b.name());
}

async fn replay_is_a_fresh_first_attempt(b: Backend) {
    let q = b.worker().await;
    q.enqueue(b"fixed now").await.unwrap();
    let d = claim(&q).await;
    q.retry(&d, Duration::ZERO, "exit status 2").await.unwrap();
    let d = claim(&q).await;
    assert_eq!(d.attempt, 2);
    q.dead_letter(&d, "retries exhausted").await.unwrap();
    let id = q.dead_letters(10).await.unwrap()[0].id;

    assert!(!q.replay(id.wrapping_add(12345)).await.unwrap(), "no such dead letter");
    assert!(q.replay(id).await.unwrap());
    assert!(!q.replay(id).await.unwrap(), "{}: a dead letter replays once", b.name());
    assert!(q.dead_letters(10).await.unwrap().is_empty());

    let fresh = claim(&q).await;
    assert_eq!((fresh.payload.as_slice(), fresh.attempt, fresh.deliveries), (&b"fixed now"[..], 1, 1), "{}", b.name());
    q.ack(&fresh).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
}

async fn purge_counts_what_it_deletes(b: Backend) {
    let q = b.worker().await;
    for p in [&b"x"[..], b"y"] {
        q.enqueue(p).await.unwrap();
        let d = claim(&q).await;
        q.dead_letter(&d, "no").await.unwrap();
    }
    q.enqueue(b"still wanted").await.unwrap();
    assert_eq!(q.purge_dead_letters().await.unwrap(), 2, "{}", b.name());
    assert_eq!(q.purge_dead_letters().await.unwrap(), 0);
    assert!(q.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(q.depth().await.unwrap().dead, 0);
    // Only dead letters are purged (not `depth().ready`: see the note in
    // depth_counts_each_state about RabbitMQ's prefetch).
    let d = claim(&q).await;
    assert_eq!(d.payload, b"still wanted");
    q.ack(&d).await.unwrap();
}

async fn payloads_are_opaque_bytes(b: Backend) {
    let q = b.worker().await;
    let big: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let payloads = BTreeSet::from([Vec::new(), b"\x00\xff\xfe not UTF-8 \xc3".to_vec(), big]);
    for p in &payloads {
        q.enqueue(p).await.unwrap();
    }
    let mut got = BTreeSet::new();
    for _ in 0..payloads.len() {
        let d = claim(&q).await;
        got.insert(d.payload.clone());
        q.ack(&d).await.unwrap();
    }
    assert!(got == payloads, "{}: every payload comes back byte for byte (empty, binary, 1 MiB)", b.name());
}

async fn a_waiting_claim_gets_a_later_enqueue(b: Backend) {
    let (waiter, producer) = (b.worker().await, b.worker().await);
    let claim = {
        let waiter = Arc::clone(&waiter);
        tokio::spawn(async move { waiter.claim(Duration::from_secs(60)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    producer.enqueue(b"late").await.unwrap();
    let d = claim.await.unwrap().unwrap().expect("the waiting claim got it");
    assert_eq!(d.payload, b"late");
    waiter.ack(&d).await.unwrap();
}

async fn settling_twice_touches_nothing_else(b: Backend) {
    let q = b.worker().await;
    q.enqueue(b"first").await.unwrap();
    let first = claim(&q).await;
    q.ack(&first).await.unwrap();
    q.enqueue(b"second").await.unwrap();
    let second = claim(&q).await;

    let stale = q.ack(&first).await;
    assert_eq!(stale.is_err(), b.differences.settling_twice_is_an_error, "{}: {stale:?}", b.name());
    assert_eq!(q.depth().await.unwrap(), depth(0, 1, 0, 0), "{}: the second delivery is untouched", b.name());
    q.ack(&second).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
}
