//! The fleet part of the contract (heartbeats, clean stops), on both
//! backends through `store_contract`'s harness.

use chrono::{Duration, Utc};
use relflow_store::{RunStore, WorkerBeat};

use super::{postgres, sqlite};

both!(beats_update_one_row_per_worker_and_leave_marks_it_stopped, beats);

fn beat(id: &str, held: u32, running: u32) -> WorkerBeat {
    WorkerBeat {
        id: id.into(),
        host: "build-01".into(),
        pid: 4242,
        version: "0.1.0".into(),
        concurrency: 2,
        prefetch: 64,
        held,
        running,
        started_at: Utc::now() - Duration::minutes(5),
    }
}

async fn beats(s: &dyn RunStore) {
    assert!(s.workers().await.unwrap().is_empty());
    s.beat(&beat("build-01:4242", 3, 1)).await.unwrap();
    s.beat(&beat("build-02:77", 0, 0)).await.unwrap();
    let before = Utc::now();
    s.beat(&beat("build-01:4242", 5, 2)).await.unwrap();

    let workers = s.workers().await.unwrap();
    assert_eq!(workers.len(), 2, "one row per worker: {workers:?}");
    // Newest beat first, with what the latest beat said.
    let w = &workers[0];
    assert_eq!((w.beat.id.as_str(), w.beat.held, w.beat.running), ("build-01:4242", 5, 2));
    assert_eq!((w.beat.concurrency, w.beat.prefetch, w.beat.pid), (2, 64, 4242));
    assert!(w.seen_at >= before - Duration::milliseconds(5), "seen_at is the latest beat");
    assert!(w.stopped_at.is_none());

    s.leave("build-01:4242").await.unwrap();
    let w = s.workers().await.unwrap().into_iter().find(|w| w.beat.id == "build-01:4242").unwrap();
    assert!(w.stopped_at.is_some(), "a clean stop is recorded");
    assert_eq!((w.beat.held, w.beat.running), (0, 0), "a stopped worker holds nothing");

    // The same id beating again (a pid reused) is running again.
    s.beat(&beat("build-01:4242", 1, 0)).await.unwrap();
    let w = s.workers().await.unwrap().into_iter().find(|w| w.beat.id == "build-01:4242").unwrap();
    assert!(w.stopped_at.is_none());
}
