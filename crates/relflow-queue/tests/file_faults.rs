//! File-system faults under an open embedded queue, on file systems the
//! test owns: a full disk, then space again (a small tmpfs), where the WAL
//! must shrink back, not keep the size it reached while the disk was full;
//! and files made unwritable (`chattr +i`), which must be a clear, fatal
//! error, not a SIGBUS from SQLite's mapped -shm.

use std::time::Duration;

use relflow_queue::{SqliteQueue, SqliteQueueOptions, WorkQueue};
use relflow_testkit::{wal_size, Immutable, Tmpfs};

#[tokio::test]
async fn after_a_full_disk_the_wal_shrinks_back_while_work_goes_on() {
    let disk = Tmpfs::new("8m");
    let path = disk.path().join("q.sqlite3");
    let q = SqliteQueue::open(&path, SqliteQueueOptions::default()).unwrap();
    // Space an operator can free later.
    std::fs::write(disk.path().join("spare"), vec![0u8; 3 << 20]).unwrap();

    let payload = vec![b'x'; 32 << 10];
    let mut queued = 0;
    let full = loop {
        match q.enqueue(&payload).await {
            Ok(()) => queued += 1,
            Err(e) => break e,
        }
        assert!(queued < 1000, "8 MiB took {queued} payloads of 32 KiB: the disk never filled");
    };
    assert!(full.to_string().contains("full"), "{full}");
    let peak = wal_size(&path);

    std::fs::remove_file(disk.path().join("spare")).unwrap();
    // Work goes on: the backlog drains, and new messages come and go.
    for _ in 0..queued {
        let d = q.claim(Duration::ZERO).await.unwrap().expect("the backlog is still queued");
        q.ack(&d).await.unwrap();
    }
    for _ in 0..20 {
        q.enqueue(b"small").await.unwrap();
        let d = q.claim(Duration::ZERO).await.unwrap().unwrap();
        q.ack(&d).await.unwrap();
    }
    assert!(q.claim(Duration::ZERO).await.unwrap().is_none(), "nothing was lost or left behind");
    // Then quiet: the WAL goes back to (nearly) nothing, where before it
    // kept its high-water mark for good.
    let shrunk = relflow_testkit::wait_for(Duration::from_secs(30), "the WAL to shrink back", || {
        let wal = wal_size(&path);
        (wal <= relflow_queue::file::IDLE_WAL_LIMIT).then_some(wal)
    });
    assert!(shrunk < peak, "{shrunk} < {peak}");
    // And it still works.
    q.enqueue(b"after").await.unwrap();
    let d = q.claim(Duration::ZERO).await.unwrap().unwrap();
    assert_eq!(d.payload, b"after");
}

#[tokio::test]
async fn unwritable_files_are_a_fatal_error_not_a_sigbus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let q = SqliteQueue::open(&path, SqliteQueueOptions::default()).unwrap();
    q.enqueue(b"one").await.unwrap();
    let frozen = Immutable::new(&[dir.path().join("q.sqlite3-shm")]);
    let e = q.claim(Duration::ZERO).await.unwrap_err();
    assert!(e.is_fatal(), "{e}");
    assert!(e.to_string().contains("q.sqlite3-shm cannot be written"), "{e}");
    assert!(q.enqueue(b"two").await.unwrap_err().is_fatal());
    drop(frozen);
    let d = q.claim(Duration::ZERO).await.unwrap().expect("the payload is still queued");
    assert_eq!(d.payload, b"one");
}
