//! Integration tests against the real RabbitMQ on 127.0.0.1:5672 (guest/guest).
//!
//! Every test gets its own vhost (`relflow_testkit::Vhost`, deleted on drop),
//! so tests run in parallel without seeing each other and leave nothing behind.
//! There are no "took less than" assertions: only orderings and lower bounds.

use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use relflow_amqp::{AmqpQueue, AmqpQueueOptions, HEADER_ATTEMPT, HEADER_DEAD_ID, HEADER_REASON};
use relflow_queue::{Delivery, WorkQueue};
use relflow_testkit::Vhost;

/// The queue's options for a test's own vhost.
fn options(vh: &Vhost) -> AmqpQueueOptions {
    AmqpQueueOptions {
        url: vh.url(),
        connection_name: format!("relflow-test {}", vh.name()),
        ..AmqpQueueOptions::default()
    }
}

const WAIT: Duration = Duration::from_secs(20);

async fn claim_some(q: &AmqpQueue) -> Delivery {
    q.claim(WAIT).await.expect("claim").expect("a delivery within the wait")
}

async fn assert_empty(q: &AmqpQueue) {
    assert!(q.claim(Duration::from_millis(300)).await.expect("claim").is_none(), "queue should be empty");
}

#[tokio::test]
async fn enqueue_claim_ack_round_trip() {
    let vh = Vhost::new("amqp-roundtrip");
    let q = AmqpQueue::connect(options(&vh)).await.unwrap();
    q.enqueue(b"one").await.unwrap();
    q.enqueue(b"two").await.unwrap();
    assert_eq!(q.depth().await.unwrap().ready, 2);

    let a = claim_some(&q).await;
    assert_eq!(a.payload, b"one");
    assert_eq!((a.attempt, a.deliveries), (1, 1));
    let d = q.depth().await.unwrap();
    assert_eq!((d.ready, d.in_flight), (1, 1));
    q.keep_alive(&a).await.unwrap();
    q.ack(&a).await.unwrap();
    // Settling twice is an error, not a silent no-op.
    assert!(q.ack(&a).await.is_err());

    let b = claim_some(&q).await;
    assert_eq!(b.payload, b"two");
    q.ack(&b).await.unwrap();
    assert_empty(&q).await;
    let d = q.depth().await.unwrap();
    assert_eq!(d.pending(), 0);
    assert_eq!(d.dead, 0);
}

#[tokio::test]
async fn confirmed_publish_is_durable_and_persistent() {
    let vh = Vhost::new("amqp-durable");
    let q = AmqpQueue::connect(options(&vh)).await.unwrap();
    q.enqueue(b"keep me").await.unwrap();
    // Gone with the object and its connection: the message stays.
    q.close().await;
    drop(q);

    // Inspect it raw: a durable quorum queue holding a persistent message.
    let conn = lapin::Connection::connect(&vh.url(), lapin::ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    // A non-passive redeclare with the same arguments succeeds only if the
    // queue is durable and quorum (otherwise PRECONDITION_FAILED).
    let decl = ch.queue_declare("relflow.work".into(), QueueDeclareOptions::durable(), args).await.unwrap();
    assert_eq!(decl.message_count(), 1);
    let msg = ch.basic_get("relflow.work".into(), BasicGetOptions { no_ack: false }).await.unwrap().unwrap();
    assert_eq!(msg.delivery.properties.delivery_mode(), &Some(2));
    assert_eq!(msg.delivery.data, b"keep me");
    ch.close(200, "bye".into()).await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();

    let q2 = AmqpQueue::connect(options(&vh)).await.unwrap();
    let d = claim_some(&q2).await;
    assert_eq!(d.payload, b"keep me");
    q2.ack(&d).await.unwrap();
}

#[tokio::test]
async fn retry_comes_back_after_the_delay_with_attempt_plus_one() {
    let vh = Vhost::new("amqp-retry");
    let q = AmqpQueue::connect(options(&vh)).await.unwrap();
    q.enqueue(b"flaky").await.unwrap();
    let d = claim_some(&q).await;
    assert_eq!(d.attempt, 1);

    let delay = Duration::from_secs(2);
    let retried_at = Instant::now();
    q.retry(&d, delay, "exit status 2").await.unwrap();
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.ready, depth.in_flight, depth.delayed), (0, 0, 1));

    let again = claim_some(&q).await;
    assert!(retried_at.elapsed() >= delay, "came back before its delay: {:?}", retried_at.elapsed());
    assert_eq!(again.payload, b"flaky");
    assert_eq!((again.attempt, again.deliveries), (2, 1));

    // And once more: attempt 3.
    q.retry(&again, Duration::from_millis(200), "still failing").await.unwrap();
    let third = claim_some(&q).await;
    assert_eq!((third.attempt, third.deliveries), (3, 1));
    q.ack(&third).await.unwrap();
    assert_eq!(q.depth().await.unwrap().pending(), 0);
}

#[tokio::test]
async fn a_short_delay_is_not_held_back_by_a_long_one() {
    let vh = Vhost::new("amqp-delays");
    // prefetch 2: this worker holds both messages at once.
    let q = AmqpQueue::connect(AmqpQueueOptions { prefetch: 2, ..options(&vh) }).await.unwrap();
    q.enqueue(b"slow").await.unwrap();
    q.enqueue(b"fast").await.unwrap();
    let slow = claim_some(&q).await;
    let fast = claim_some(&q).await;
    assert_eq!((slow.payload.as_slice(), fast.payload.as_slice()), (&b"slow"[..], &b"fast"[..]));
    // The long delay is retried first, so with one shared delay queue and
    // per-message TTL it would sit at the head and hold the short one back.
    q.retry(&slow, Duration::from_secs(5), "later").await.unwrap();
    q.retry(&fast, Duration::from_millis(500), "soon").await.unwrap();
    assert_eq!(q.depth().await.unwrap().delayed, 2);

    let first = claim_some(&q).await;
    assert_eq!(first.payload, b"fast");
    q.ack(&first).await.unwrap();
    let second = claim_some(&q).await;
    assert_eq!(second.payload, b"slow");
    assert_eq!(second.attempt, 2);
    q.ack(&second).await.unwrap();
}

#[tokio::test]
async fn dead_letters_carry_reason_and_attempt_and_can_be_listed_replayed_purged() {
    let vh = Vhost::new("amqp-dead");
    let q = AmqpQueue::connect(options(&vh)).await.unwrap();
    for p in [&b"poison"[..], b"tired", b"junk"] {
        q.enqueue(p).await.unwrap();
    }
    let poison = claim_some(&q).await;
    q.dead_letter(&poison, "cannot decode payload").await.unwrap();

    let tired = claim_some(&q).await;
    q.retry(&tired, Duration::from_millis(100), "exit 2").await.unwrap();
    let junk = claim_some(&q).await;
    assert_eq!(junk.payload, b"junk");
    q.dead_letter(&junk, "no such playbook").await.unwrap();
    let tired = claim_some(&q).await;
    assert_eq!((tired.payload.as_slice(), tired.attempt), (&b"tired"[..], 2));
    q.dead_letter(&tired, "retries exhausted: exit 2").await.unwrap();

    let depth = q.depth().await.unwrap();
    assert_eq!((depth.dead, depth.pending()), (3, 0));

    // Listing does not consume: twice the same answer, oldest first.
    let listed = q.dead_letters(10).await.unwrap();
    let again = q.dead_letters(10).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed.iter().map(|l| l.id).collect::<Vec<_>>(), again.iter().map(|l| l.id).collect::<Vec<_>>());
    let summary: Vec<(&[u8], &str, u32)> =
        listed.iter().map(|l| (l.payload.as_slice(), l.reason.as_str(), l.attempt)).collect();
    assert_eq!(
        summary,
        vec![
            (&b"poison"[..], "cannot decode payload", 1),
            (&b"junk"[..], "no such playbook", 1),
            (&b"tired"[..], "retries exhausted: exit 2", 2),
        ]
    );
    assert!(listed.windows(2).all(|w| w[0].dead_at <= w[1].dead_at));
    assert_eq!(q.dead_letters(1).await.unwrap().len(), 1);
    assert_eq!(q.depth().await.unwrap().dead, 3, "listing must put everything back");

    // The headers are there for other tools too.
    let conn = lapin::Connection::connect(&vh.url(), lapin::ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let raw = ch.basic_get("relflow.dead".into(), BasicGetOptions { no_ack: false }).await.unwrap().unwrap();
    let headers = raw.delivery.properties.headers().clone().unwrap();
    for h in [HEADER_REASON, HEADER_ATTEMPT, HEADER_DEAD_ID] {
        assert!(headers.contains_key(h), "dead letter lacks {h}: {headers:?}");
    }
    ch.close(200, "bye".into()).await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();

    // Replay the tired one: a fresh first attempt on the work queue.
    let tired_id = listed[2].id;
    assert!(q.replay(tired_id).await.unwrap());
    assert!(!q.replay(tired_id).await.unwrap(), "replayed twice");
    assert!(!q.replay(12345).await.unwrap());
    let replayed = claim_some(&q).await;
    assert_eq!(replayed.payload, b"tired");
    assert_eq!((replayed.attempt, replayed.deliveries), (1, 1));
    q.ack(&replayed).await.unwrap();

    let left = q.dead_letters(10).await.unwrap();
    assert_eq!(left.iter().map(|l| l.id).collect::<Vec<_>>(), vec![listed[0].id, listed[1].id]);
    assert_eq!(q.purge_dead_letters().await.unwrap(), 2);
    assert!(q.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(q.purge_dead_letters().await.unwrap(), 0);
}

#[tokio::test]
async fn release_redelivers_with_the_same_attempt_and_one_more_delivery() {
    let vh = Vhost::new("amqp-release");
    let q = AmqpQueue::connect(options(&vh)).await.unwrap();
    q.enqueue(b"shutdown").await.unwrap();
    let d = claim_some(&q).await;
    q.retry(&d, Duration::from_millis(50), "once").await.unwrap();
    let d = claim_some(&q).await;
    assert_eq!((d.attempt, d.deliveries), (2, 1));

    q.release(&d).await.unwrap();
    assert_eq!(q.depth().await.unwrap().in_flight, 0);
    let again = claim_some(&q).await;
    assert_eq!(again.payload, b"shutdown");
    assert_eq!((again.attempt, again.deliveries), (2, 2));
    q.release(&again).await.unwrap();
    let third = claim_some(&q).await;
    assert_eq!((third.attempt, third.deliveries), (2, 3));
    q.ack(&third).await.unwrap();
}

#[tokio::test]
async fn a_worker_that_dies_without_ack_gives_the_message_to_another() {
    let vh = Vhost::new("amqp-crash");
    let a = AmqpQueue::connect(options(&vh)).await.unwrap();
    let b = AmqpQueue::connect(options(&vh)).await.unwrap();
    a.enqueue(b"run me").await.unwrap();
    let held = claim_some(&a).await;
    assert_eq!(held.deliveries, 1);
    // b sees nothing while a holds it.
    assert_empty(&b).await;

    // a "crashes": the object and its connection go away without an ack.
    drop(a);
    let d = claim_some(&b).await;
    assert_eq!(d.payload, b"run me");
    assert_eq!((d.attempt, d.deliveries), (1, 2), "a crash is not an attempt, but it is a delivery");
    b.ack(&d).await.unwrap();
    assert_empty(&b).await;
}

#[tokio::test]
async fn reconnects_after_the_broker_closes_the_connection() {
    let vh = Vhost::new("amqp-reconnect");
    let q = AmqpQueue::connect(options(&vh)).await.unwrap();
    q.enqueue(b"before").await.unwrap();
    let d = claim_some(&q).await;
    assert_eq!(q.connection_generation().await, 1);

    // Idle connection (and one unacked delivery) cut by the broker.
    vh.close_connections();
    // Wait until the client has seen the close (rabbitmqctl returns before
    // the close frame has necessarily been processed here).
    let seen = Instant::now();
    while q.keep_alive(&d).await.is_ok() {
        assert!(seen.elapsed() < WAIT, "the client never noticed the closed connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The delivery died with its channel: settling it says so...
    let err = q.ack(&d).await.unwrap_err();
    assert!(err.to_string().contains("deliver it again"), "{err}");

    // ...and the same object keeps working.
    q.enqueue(b"after").await.unwrap();
    assert!(q.connection_generation().await >= 2);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let d = claim_some(&q).await;
        seen.push(String::from_utf8(d.payload.clone()).unwrap());
        if d.payload == b"before" {
            assert_eq!(d.deliveries, 2, "the unacked one is redelivered");
        }
        q.ack(&d).await.unwrap();
    }
    seen.sort();
    assert_eq!(seen, ["after", "before"]);
    assert_empty(&q).await;

    // Cut again while a claim is idle-waiting on the consumer.
    let waiter = {
        let opts = options(&vh);
        tokio::spawn(async move {
            let q = AmqpQueue::connect(opts).await.unwrap();
            let got = q.claim(Duration::from_secs(1)).await;
            (q, got.map(|d| d.is_none()))
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    vh.close_connections();
    let (q2, got) = waiter.await.unwrap();
    // The cut may surface as "nothing yet" or as an error; either way the
    // next calls work on the same object.
    let _ = got;
    q2.enqueue(b"later").await.unwrap();
    let d = claim_some(&q2).await;
    assert_eq!(d.payload, b"later");
    q2.ack(&d).await.unwrap();
}

/// The worker awaits a long playbook run without touching the queue: lapin's
/// heartbeats keep the connection (and so the unacked delivery) alive. With a
/// 1 s heartbeat the broker would drop a silent connection after ~2-3 s; we
/// sit on the delivery for 6 s and still ack it on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_long_run_alive() {
    let vh = Vhost::new("amqp-heartbeat");
    let opts = AmqpQueueOptions { url: format!("{}?heartbeat=1", vh.url()), ..options(&vh) };
    let q = AmqpQueue::connect(opts.clone()).await.unwrap();
    let other = AmqpQueue::connect(opts).await.unwrap();
    q.enqueue(b"long playbook").await.unwrap();
    assert_eq!(q.heartbeat().await, Some(1), "the heartbeat from the URL is negotiated");
    let d = claim_some(&q).await;

    // "Run the playbook": an async wait, as the worker does on the child.
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Even a worker thread blocked outright (a synchronous call inside the
    // run) does not stop them: lapin's I/O runs on its own thread and the
    // heartbeat timer on another runtime worker.
    std::thread::sleep(Duration::from_secs(4));
    // Nobody else got it meanwhile.
    assert_empty(&other).await;
    q.ack(&d).await.unwrap();
    assert_eq!(q.connection_generation().await, 1, "the connection must not have been lost");
    assert_empty(&other).await;
    assert_eq!(other.depth().await.unwrap().pending(), 0);
}

#[tokio::test]
async fn depth_counts_configured_delay_queues_from_another_process() {
    let vh = Vhost::new("amqp-depth");
    let delay = Duration::from_secs(60);
    let worker = AmqpQueue::connect(options(&vh)).await.unwrap();
    worker.enqueue(b"x").await.unwrap();
    let d = claim_some(&worker).await;
    worker.retry(&d, delay, "later").await.unwrap();

    // A status process that never retried anything only knows the delay
    // from its configuration.
    let blind = AmqpQueue::connect(options(&vh)).await.unwrap();
    assert_eq!(blind.depth().await.unwrap().delayed, 0);
    let told =
        AmqpQueue::connect(AmqpQueueOptions { retry_delays: vec![delay, Duration::from_secs(7)], ..options(&vh) })
            .await
            .unwrap();
    assert_eq!(told.depth().await.unwrap().delayed, 1);
    assert_eq!(worker.depth().await.unwrap().delayed, 1);
}

#[tokio::test]
async fn prefix_isolates_installations_and_consumer_timeout_argument_is_accepted() {
    let vh = Vhost::new("amqp-prefix");
    let a = AmqpQueue::connect(AmqpQueueOptions { prefix: "a.".into(), ..options(&vh) }).await.unwrap();
    let b = AmqpQueue::connect(AmqpQueueOptions {
        prefix: "b.".into(),
        prefetch: 4,
        consumer_timeout: Some(Duration::from_secs(6 * 3600)),
        ..options(&vh)
    })
    .await
    .unwrap();
    assert_eq!(a.work_queue_name(), "a.relflow.work");
    assert_eq!(b.retry_queue_name(Duration::from_secs(30)), "b.relflow.retry.30s");
    a.enqueue(b"for a").await.unwrap();
    for i in 0..3 {
        b.enqueue(format!("for b {i}").as_bytes()).await.unwrap();
    }
    // prefetch 4: b may hold all three at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        let d = claim_some(&b).await;
        assert!(d.payload.starts_with(b"for b"));
        held.push(d);
    }
    assert_eq!(b.depth().await.unwrap().in_flight, 3);
    for d in &held {
        b.ack(d).await.unwrap();
    }
    let d = claim_some(&a).await;
    assert_eq!(d.payload, b"for a");
    a.ack(&d).await.unwrap();
}

/// The negative control for the test above, and the one way to lose the
/// connection mid-run: block the only thread of a current-thread runtime.
/// lapin's heartbeat timer is a task on the caller's runtime, so nothing
/// sends heartbeats, the broker drops the connection and requeues the
/// delivery. relflow's worker therefore awaits its child processes on a
/// multi-thread runtime and never blocks in async code.
#[tokio::test(flavor = "current_thread")]
async fn a_blocked_current_thread_runtime_loses_the_connection() {
    let vh = Vhost::new("amqp-blocked");
    let opts = AmqpQueueOptions { url: format!("{}?heartbeat=1", vh.url()), ..options(&vh) };
    let q = AmqpQueue::connect(opts.clone()).await.unwrap();
    q.enqueue(b"long playbook").await.unwrap();
    let d = claim_some(&q).await;
    std::thread::sleep(Duration::from_secs(8));
    let lost = Instant::now();
    while q.keep_alive(&d).await.is_ok() {
        assert!(lost.elapsed() < WAIT, "the broker should have dropped the silent connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The broker gave the message back: a fresh connection gets it again.
    let again = claim_some(&q).await;
    assert_eq!((again.payload.as_slice(), again.deliveries), (&b"long playbook"[..], 2));
    q.ack(&again).await.unwrap();
}
