//! The embedded queue's delivery contract, on a real SQLite file.

use std::time::Duration;

use relflow_queue::{SqliteQueue, SqliteQueueOptions, WorkQueue};

const NOW: Duration = Duration::ZERO;

fn queue(dir: &tempfile::TempDir, visibility: Duration) -> SqliteQueue {
    let opts = SqliteQueueOptions { visibility_timeout: visibility, poll_interval: Duration::from_millis(20) };
    SqliteQueue::open(dir.path().join("q.sqlite3"), opts).unwrap()
}

#[tokio::test]
async fn enqueue_claim_ack_round_trip_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, Duration::from_secs(60));
    q.enqueue(b"one").await.unwrap();
    q.enqueue(b"two").await.unwrap();
    assert_eq!(q.depth().await.unwrap().ready, 2);

    let a = q.claim(NOW).await.unwrap().expect("first payload");
    assert_eq!((a.payload.as_slice(), a.attempt, a.deliveries), (&b"one"[..], 1, 1));
    let b = q.claim(NOW).await.unwrap().expect("second payload");
    assert_eq!(b.payload, b"two");
    assert!(q.claim(NOW).await.unwrap().is_none(), "both are leased");
    assert_eq!(q.depth().await.unwrap().in_flight, 2);

    q.ack(&a).await.unwrap();
    q.ack(&b).await.unwrap();
    assert_eq!(q.depth().await.unwrap().pending(), 0);
}

/// Several in one call (one transaction), oldest first, each leased: what
/// lets a worker with free slots fill them for one fsync.
#[tokio::test]
async fn claim_many_takes_up_to_max_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, Duration::from_secs(60));
    for p in [b"a", b"b", b"c", b"d", b"e"] {
        q.enqueue(p).await.unwrap();
    }
    let first = q.claim_many(3, NOW).await.unwrap();
    let payloads: Vec<&[u8]> = first.iter().map(|d| d.payload.as_slice()).collect();
    assert_eq!(payloads, [b"a", b"b", b"c"]);
    assert_eq!(q.depth().await.unwrap().in_flight, 3);
    let rest = q.claim_many(10, NOW).await.unwrap();
    assert_eq!(rest.iter().map(|d| d.payload.as_slice()).collect::<Vec<_>>(), [b"d", b"e"]);
    assert!(q.claim_many(10, NOW).await.unwrap().is_empty(), "all are leased");
    for d in first.iter().chain(&rest) {
        q.ack(d).await.unwrap();
    }
    assert_eq!(q.depth().await.unwrap().pending(), 0);
}

#[tokio::test]
async fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    queue(&dir, Duration::from_secs(60)).enqueue(b"durable").await.unwrap();
    let q = queue(&dir, Duration::from_secs(60));
    assert_eq!(q.claim(NOW).await.unwrap().unwrap().payload, b"durable");
}

#[tokio::test]
async fn expired_lease_is_redelivered_and_stale_ack_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, Duration::from_millis(100));
    q.enqueue(b"x").await.unwrap();
    let first = q.claim(NOW).await.unwrap().unwrap();
    // The first worker "dies": it never renews. After the lease runs out the
    // payload comes back, counted as a second delivery but the same attempt.
    let second = q.claim(Duration::from_secs(5)).await.unwrap().expect("redelivered");
    assert_eq!((second.attempt, second.deliveries), (1, 2));

    // The first worker wakes up and acks: that must not remove the
    // delivery the second worker now holds.
    q.ack(&first).await.unwrap();
    assert_eq!(q.depth().await.unwrap().pending(), 1);
    q.ack(&second).await.unwrap();
    assert_eq!(q.depth().await.unwrap().pending(), 0);
}

/// A retry starts the delivery count again, so `deliveries` alone no
/// longer fences: the attempt does too. Handouts of earlier attempts (here
/// (1, 1) from a worker that hung, and (1, 2) that was retried) can never
/// settle the current one, (2, 1).
#[tokio::test]
async fn stale_deliveries_of_earlier_attempts_are_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, Duration::from_millis(100));
    q.enqueue(b"x").await.unwrap();
    let hung = q.claim(NOW).await.unwrap().unwrap();
    let second = q.claim(Duration::from_secs(5)).await.unwrap().expect("redelivered after the lease");
    assert_eq!((second.attempt, second.deliveries), (1, 2));
    q.retry(&second, Duration::ZERO, "exit 2").await.unwrap();
    let current = q.claim(NOW).await.unwrap().unwrap();
    assert_eq!((current.attempt, current.deliveries), (2, 1));

    for stale in [&hung, &second] {
        q.ack(stale).await.unwrap();
        q.dead_letter(stale, "stale").await.unwrap();
        q.release(stale).await.unwrap();
        q.retry(stale, Duration::ZERO, "stale").await.unwrap();
    }
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.in_flight, depth.dead), (1, 0), "the current delivery is untouched");
    q.ack(&current).await.unwrap();
    assert_eq!(q.depth().await.unwrap().pending(), 0);
}

#[tokio::test]
async fn keep_alive_holds_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, Duration::from_millis(300));
    q.enqueue(b"long run").await.unwrap();
    let d = q.claim(NOW).await.unwrap().unwrap();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        q.keep_alive(&d).await.unwrap();
        assert!(q.claim(NOW).await.unwrap().is_none(), "renewed lease must hide the payload");
    }
}

#[tokio::test]
async fn retry_waits_for_the_delay_and_counts_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, Duration::from_secs(60));
    q.enqueue(b"flaky").await.unwrap();
    let d = q.claim(NOW).await.unwrap().unwrap();
    q.retry(&d, Duration::from_secs(3600), "exit 2").await.unwrap();
    assert!(q.claim(NOW).await.unwrap().is_none(), "not before its delay");
    assert_eq!(q.depth().await.unwrap().delayed, 1);

    q.enqueue(b"other").await.unwrap();
    let other = q.claim(NOW).await.unwrap().unwrap();
    q.retry(&other, Duration::ZERO, "exit 2").await.unwrap();
    let again = q.claim(NOW).await.unwrap().unwrap();
    // A retry starts the delivery count again: the first handout finished.
    assert_eq!((again.payload.as_slice(), again.attempt, again.deliveries), (&b"other"[..], 2, 1));
}

#[tokio::test]
async fn release_redelivers_without_counting_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, Duration::from_secs(60));
    q.enqueue(b"x").await.unwrap();
    let d = q.claim(NOW).await.unwrap().unwrap();
    q.release(&d).await.unwrap();
    let again = q.claim(NOW).await.unwrap().unwrap();
    assert_eq!((again.attempt, again.deliveries), (1, 2));
}

#[tokio::test]
async fn dead_letter_list_replay_purge() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, Duration::from_secs(60));
    for p in [&b"a"[..], b"b"] {
        q.enqueue(p).await.unwrap();
        let d = q.claim(NOW).await.unwrap().unwrap();
        q.retry(&d, Duration::ZERO, "first failure").await.unwrap();
        let d = q.claim(NOW).await.unwrap().unwrap();
        q.dead_letter(&d, &format!("{} failed for good", String::from_utf8_lossy(p))).await.unwrap();
    }
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(
        (dead[0].payload.as_slice(), dead[0].reason.as_str(), dead[0].attempt),
        (&b"a"[..], "a failed for good", 2)
    );
    assert_eq!(q.depth().await.unwrap(), relflow_queue::QueueDepth { dead: 2, ..Default::default() });

    assert!(q.replay(dead[0].id).await.unwrap());
    assert!(!q.replay(dead[0].id).await.unwrap(), "a dead letter replays once");
    let d = q.claim(NOW).await.unwrap().unwrap();
    assert_eq!((d.payload.as_slice(), d.attempt), (&b"a"[..], 1), "replay is a fresh first attempt");

    assert_eq!(q.purge_dead_letters().await.unwrap(), 1);
    assert!(q.dead_letters(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn claim_wakes_on_local_enqueue() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, Duration::from_secs(60));
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.claim(Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    q.enqueue(b"late").await.unwrap();
    let d = waiter.await.unwrap().unwrap().expect("claim saw the enqueue");
    assert_eq!(d.payload, b"late");
}

#[tokio::test]
async fn two_handles_never_claim_the_same_payload() {
    let dir = tempfile::tempdir().unwrap();
    let a = queue(&dir, Duration::from_secs(60));
    let b = queue(&dir, Duration::from_secs(60));
    for i in 0..200u32 {
        a.enqueue(&i.to_be_bytes()).await.unwrap();
    }
    let take = |q: SqliteQueue| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(d) = q.claim(NOW).await.unwrap() {
                got.push(u32::from_be_bytes(d.payload.as_slice().try_into().unwrap()));
                q.ack(&d).await.unwrap();
            }
            got
        })
    };
    let (ga, gb) = (take(a), take(b));
    let mut all = ga.await.unwrap();
    all.extend(gb.await.unwrap());
    all.sort();
    assert_eq!(all, (0..200).collect::<Vec<_>>());
}

/// Another process's enqueue (here: another handle, so another connection
/// and no shared notifier) wakes a waiting claim through the WAL watch. The
/// poll fallback is an hour and the claim would look again only at its 60 s
/// deadline; the test gives up after 20 s, so only the watch can deliver
/// the payload in time.
#[tokio::test]
async fn claim_wakes_on_another_connections_enqueue() {
    let dir = tempfile::tempdir().unwrap();
    let opts =
        || SqliteQueueOptions { visibility_timeout: Duration::from_secs(60), poll_interval: Duration::from_secs(3600) };
    let worker = SqliteQueue::open(dir.path().join("q.sqlite3"), opts()).unwrap();
    let publisher = SqliteQueue::open(dir.path().join("q.sqlite3"), opts()).unwrap();
    let waiter = tokio::spawn(async move { worker.claim(Duration::from_secs(60)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    publisher.enqueue(b"from elsewhere").await.unwrap();
    let claimed =
        tokio::time::timeout(Duration::from_secs(20), waiter).await.expect("the WAL watch did not wake the claim");
    let d = claimed.unwrap().unwrap().expect("the watch saw the other connection's commit");
    assert_eq!(d.payload, b"from elsewhere");
}
