//! The stateful-rules part of the contract (coalesce windows, joins), on
//! both backends through `store_contract`'s harness.

use std::time::Duration;

use relflow_store::{Added, BatchAdd, BatchKind, Limit, RunStore};
use serde_json::json;

use super::{postgres, sqlite};

both!(coalesce_fills_one_batch_per_key, coalesce_fills);
both!(a_redelivered_message_is_never_counted_twice, duplicates);
both!(latest_keeps_only_the_newest, latest);
both!(a_join_completes_and_a_late_message_starts_nothing, join);
both!(one_claimant_per_due_batch_and_an_expired_claim_is_claimed_again, claims);

fn coalesce(key: &str, id: &str, window: Duration, max: usize) -> BatchAdd {
    BatchAdd {
        rule: "regen".into(),
        key: key.into(),
        kind: BatchKind::Coalesce,
        message_id: id.into(),
        part: String::new(),
        message: json!({"id": id, "body": {"tag": key}}),
        window,
        limit: Limit::Max(max),
        latest: false,
    }
}

fn join_part(id: &str, part: &str) -> BatchAdd {
    BatchAdd {
        rule: "tested".into(),
        key: "Fedora-Rawhide-1".into(),
        kind: BatchKind::Join,
        message_id: id.into(),
        part: part.into(),
        message: json!({"id": id}),
        window: Duration::from_secs(3600),
        limit: Limit::Parts(vec![("compose".into(), 1), ("openqa".into(), 3)]),
        latest: false,
    }
}

fn batch_of(added: &Added) -> String {
    match added {
        Added::Buffered { batch, .. } => batch.clone(),
        other => panic!("not buffered: {other:?}"),
    }
}

const HOUR: Duration = Duration::from_secs(3600);

async fn coalesce_fills(s: &dyn RunStore) {
    let a = batch_of(&s.add_to_batch(&coalesce("f44", "m1", HOUR, 3)).await.unwrap());
    let b = batch_of(&s.add_to_batch(&coalesce("f43", "m2", HOUR, 3)).await.unwrap());
    assert_ne!(a, b, "one batch per key");
    assert_eq!(batch_of(&s.add_to_batch(&coalesce("f44", "m3", HOUR, 3)).await.unwrap()), a);
    let open = s.open_batches().await.unwrap();
    assert_eq!(open.len(), 2);
    assert!(s.claim_due_batch("w1", HOUR).await.unwrap().is_none(), "nothing is due within the window");
    let third = s.add_to_batch(&coalesce("f44", "m4", HOUR, 3)).await.unwrap();
    assert!(matches!(third, Added::Buffered { count: 3, full: true, .. }), "{third:?}");
    let due = s.claim_due_batch("w1", HOUR).await.unwrap().expect("the full batch is due");
    assert_eq!((due.id.as_str(), due.outcome.as_str()), (a.as_str(), "full"));
    let batch = s.batch(&a).await.unwrap().unwrap();
    let ids: Vec<_> = batch.items.iter().map(|i| i.message_id.as_str()).collect();
    assert_eq!(ids, ["m1", "m3", "m4"], "in arrival order");
    // A message after the close opens the next window.
    assert_ne!(batch_of(&s.add_to_batch(&coalesce("f44", "m5", HOUR, 3)).await.unwrap()), a);
    assert!(s.claim_due_batch("w2", HOUR).await.unwrap().is_none(), "a live claim holds");
}

async fn duplicates(s: &dyn RunStore) {
    let a = batch_of(&s.add_to_batch(&coalesce("f44", "m1", HOUR, 10)).await.unwrap());
    assert_eq!(s.add_to_batch(&coalesce("f44", "m1", HOUR, 10)).await.unwrap(), Added::Duplicate { batch: a.clone() });
    let small = coalesce("f44", "m2", Duration::from_millis(1), 10);
    s.add_to_batch(&small).await.unwrap();
    assert_eq!(s.batch(&a).await.unwrap().unwrap().items.len(), 2);
}

async fn latest(s: &dyn RunStore) {
    let mut id = String::new();
    for m in ["c1", "c2", "c3"] {
        let add = BatchAdd { latest: true, ..coalesce("rawhide", m, HOUR, 10) };
        let added = s.add_to_batch(&add).await.unwrap();
        assert!(matches!(added, Added::Buffered { count: 1, .. }), "{added:?}");
        id = batch_of(&added);
    }
    let items = s.batch(&id).await.unwrap().unwrap().items;
    assert_eq!(items.iter().map(|i| i.message_id.as_str()).collect::<Vec<_>>(), ["c3"]);

    // Added out of order (a worker decides deliveries side by side): the
    // one sent last is kept, whatever the order they were added in.
    let sent = |id: &str, at: &str| BatchAdd {
        latest: true,
        message: json!({"id": id, "body": {"tag": "f44"}, "sent_at": at}),
        ..coalesce("f44", id, HOUR, 10)
    };
    let (newest, older) = (sent("d5", "2026-12-01T10:00:05.2Z"), sent("d4", "2026-12-01T10:00:04.987654Z"));
    let id = batch_of(&s.add_to_batch(&newest).await.unwrap());
    let added = s.add_to_batch(&older).await.unwrap();
    assert!(matches!(added, Added::Buffered { count: 1, .. }), "{added:?}");
    let duplicate = s.add_to_batch(&older).await.unwrap();
    assert!(matches!(duplicate, Added::Duplicate { .. }), "an older one is still known: {duplicate:?}");
    let items = s.batch(&id).await.unwrap().unwrap().items;
    assert_eq!(items.iter().map(|i| i.message_id.as_str()).collect::<Vec<_>>(), ["d5"]);
}

async fn join(s: &dyn RunStore) {
    for (id, part) in [("q1", "openqa"), ("c", "compose"), ("q2", "openqa")] {
        let added = s.add_to_batch(&join_part(id, part)).await.unwrap();
        assert!(matches!(added, Added::Buffered { full: false, .. }), "{added:?}");
    }
    let open = s.open_batches().await.unwrap();
    assert_eq!(open[0].arrived, [("compose".to_string(), 1), ("openqa".to_string(), 2)]);
    let last = s.add_to_batch(&join_part("q3", "openqa")).await.unwrap();
    assert!(matches!(last, Added::Buffered { count: 4, full: true, .. }), "{last:?}");
    let due = s.claim_due_batch("w1", HOUR).await.unwrap().unwrap();
    assert_eq!(due.outcome, "complete");
    let late = s.add_to_batch(&join_part("q4", "openqa")).await.unwrap();
    assert_eq!(late, Added::Late { outcome: "complete".into() });
    assert_eq!(s.open_batches().await.unwrap().len(), 1, "closed but not queued yet");
    s.batch_sent(&due.id).await.unwrap();
    assert!(s.open_batches().await.unwrap().is_empty());
}

async fn claims(s: &dyn RunStore) {
    let a = batch_of(&s.add_to_batch(&coalesce("f44", "m1", Duration::from_millis(1), 10)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (one, two) = tokio::join!(
        s.claim_due_batch("w1", Duration::from_millis(50)),
        s.claim_due_batch("w2", Duration::from_millis(50))
    );
    let claimed: Vec<_> = [one.unwrap(), two.unwrap()].into_iter().flatten().collect();
    assert_eq!(claimed.len(), 1, "one claimant: {claimed:?}");
    assert_eq!(claimed[0].outcome, "window");
    // The claimant died before queueing it: the lease runs out, it comes back.
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(s.claim_due_batch("w3", HOUR).await.unwrap().map(|d| d.id), Some(a.clone()));
    s.batch_sent(&a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(s.claim_due_batch("w4", Duration::from_millis(1)).await.unwrap().is_none(), "sent is done");
}
