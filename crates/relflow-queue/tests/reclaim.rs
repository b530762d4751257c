//! The embedded queue's file shrinks back as a backlog drains, and a file
//! made before incremental vacuum is switched over in place.

use std::path::Path;
use std::time::Duration;

use relflow_queue::{SqliteQueue, SqliteQueueOptions, WorkQueue};

/// Pages in the file, counted after a checkpoint (the WAL is where freed
/// pages wait until then).
fn pages(path: &Path) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap()
}

fn open(path: &Path) -> SqliteQueue {
    SqliteQueue::open(path, SqliteQueueOptions::default()).unwrap()
}

#[tokio::test]
async fn a_drained_backlog_gives_its_pages_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    let q = open(&path);
    let empty = pages(&path);
    let payload = vec![b'x'; 4000];
    for _ in 0..500 {
        q.enqueue(&payload).await.unwrap();
    }
    let full = pages(&path);
    assert!(full > empty + 450, "500 x 4 KB take pages: {empty} -> {full}");
    while let Some(d) = q.claim(Duration::ZERO).await.unwrap() {
        q.ack(&d).await.unwrap();
    }
    let drained = pages(&path);
    assert!(drained < empty + (full - empty) / 10, "pages: empty {empty}, full {full}, drained {drained}");
}

#[tokio::test]
async fn an_old_queue_file_switches_to_incremental_vacuum_keeping_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite3");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL,
                 attempt INTEGER NOT NULL DEFAULT 1, deliveries INTEGER NOT NULL DEFAULT 0,
                 not_before INTEGER NOT NULL, lease_until INTEGER, last_error TEXT);
             CREATE INDEX queue_ready ON queue (not_before, id);
             INSERT INTO queue (payload, not_before) VALUES (x'6f6c64', 0);",
        )
        .unwrap();
        let mode: i64 = c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, 0, "made the way relflow made it before");
    }
    let q = open(&path);
    let c = rusqlite::Connection::open(&path).unwrap();
    let mode: i64 = c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, 2, "incremental");
    assert_eq!(q.depth().await.unwrap().ready, 1);
    assert_eq!(q.claim(Duration::ZERO).await.unwrap().unwrap().payload, b"old");
}
