//! The SQLite run store on a disk that fills up and on files that stop
//! being writable, both on file systems the test owns (a small tmpfs,
//! `chattr +i`).

use relflow_store::{NewRun, RunOutcome, RunStatus, RunStore, SqliteStore, TaskCounts};
use relflow_testkit::{wal_size, Immutable, Tmpfs};
use serde_json::json;

fn run(id: &str) -> NewRun {
    NewRun {
        id: id.into(),
        message_id: format!("m-{id}"),
        topic: "a.b".into(),
        rule: "r".into(),
        playbook: "p.yml".into(),
        attempt: 1,
        worker: "host:1".into(),
        message: json!({}),
    }
}

fn outcome(log: String) -> RunOutcome {
    RunOutcome {
        status: RunStatus::Succeeded,
        exit_code: Some(0),
        counts: TaskCounts::default(),
        tasks: json!([]),
        log,
        error: None,
    }
}

/// Runs with big logs fill the disk; space comes back: the first write that
/// works again empties the WAL, which had kept the size it reached.
#[tokio::test]
async fn after_a_full_disk_the_wal_is_emptied_once_writes_work_again() {
    let disk = Tmpfs::new("8m");
    let path = disk.path().join("runs.sqlite3");
    let store = SqliteStore::open(&path).unwrap();
    std::fs::write(disk.path().join("spare"), vec![0u8; 3 << 20]).unwrap();

    let mut n = 0;
    let full = loop {
        let id = format!("r{n}");
        let written = async {
            store.start(&run(&id)).await?;
            store.finish(&id, &outcome("x".repeat(64 << 10))).await
        };
        if let Err(e) = written.await {
            break e;
        }
        n += 1;
        assert!(n < 1000, "8 MiB took {n} logs of 64 KiB: the disk never filled");
    };
    assert!(full.to_string().contains("full"), "{full}");
    let peak = wal_size(&path);

    std::fs::remove_file(disk.path().join("spare")).unwrap();
    store.start(&run("after")).await.unwrap();
    let wal = wal_size(&path);
    assert!(wal <= relflow_queue::file::IDLE_WAL_LIMIT, "the WAL is {wal} bytes with space again (it reached {peak})");
    assert!(store.get("after").await.unwrap().is_some());
}

/// Files made unwritable under an open store: a clear, fatal error from
/// every call (the worker stops on it), not a SIGBUS from the mapped -shm.
#[tokio::test]
async fn unwritable_files_are_a_fatal_error_not_a_sigbus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.sqlite3");
    let store = SqliteStore::open(&path).unwrap();
    store.start(&run("r1")).await.unwrap();
    let shm = dir.path().join("runs.sqlite3-shm");
    let frozen = Immutable::new(std::slice::from_ref(&shm));
    for result in [store.finish("r1", &outcome(String::new())).await.err(), store.get("r1").await.err()] {
        let e = result.expect("an error, not a success");
        assert!(e.is_fatal(), "{e}");
        assert!(e.to_string().contains("runs.sqlite3-shm cannot be written"), "{e}");
    }
    drop(frozen);
    store.finish("r1", &outcome(String::new())).await.unwrap();
    assert_eq!(store.get("r1").await.unwrap().unwrap().record.status, RunStatus::Succeeded);
}
