//! Faults under a running worker that used to go unnoticed: the embedded
//! queue's file deleted or replaced. The worker must stop with a clear
//! error (systemd restarts it on the file that is there now) instead of
//! going on with an unlinked file nobody else sees.

mod common;

use std::time::Duration;

use common::{wait_for, Env};
use relflow_testkit::wait_until;

fn a_worker_stops_when_its_queue_file(what: &str, change: impl FnOnce(&Env)) {
    let env = Env::new("");
    let mut worker = env.spawn_worker(&[]);
    wait_until(Duration::from_secs(60), "the worker to take work", || env.worker_logs().contains("worker started"));
    change(&env);
    let status = wait_for(Duration::from_secs(60), "the worker to stop by itself", || worker.try_wait().unwrap());
    let logs = env.worker_logs();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains(&format!("relflow.sqlite3 was {what} while this process had it open")), "{logs}");
}

#[test]
fn a_deleted_queue_file_stops_the_worker_with_a_clear_error() {
    a_worker_stops_when_its_queue_file("deleted", |env| {
        for suffix in ["", "-wal", "-shm"] {
            std::fs::remove_file(env.path(&format!("data/relflow.sqlite3{suffix}"))).unwrap();
        }
    });
}

#[test]
fn a_replaced_queue_file_stops_the_worker_with_a_clear_error() {
    a_worker_stops_when_its_queue_file("replaced by another file", |env| {
        let db = env.path("data/relflow.sqlite3");
        let copy = env.path("data/copy.sqlite3");
        std::fs::copy(&db, &copy).unwrap();
        std::fs::rename(&copy, &db).unwrap();
    });
}
