//! Faults under a running worker that used to go unnoticed: the embedded
//! queue's file deleted, replaced or made unwritable. The worker must stop
//! with a clear error (systemd restarts it on the file that is there now)
//! instead of going on with an unlinked file nobody else sees, or dying of
//! a signal.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::{wait_for, Env};
use relflow_testkit::{wait_until, Immutable};

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

/// The store refuses the run's final write for a while (as a full disk or
/// a database restart would): the worker keeps the result and retries the
/// write, so the run is recorded once and the playbook does not run again.
#[test]
fn a_finished_run_the_store_cannot_record_for_a_while_is_recorded_not_rerun() {
    let db = relflow_testkit::PgDatabase::new();
    let env = Env::with_tables(
        "",
        &format!("[store]\nurl = {:?}\n", db.url()),
        "[[rule]]\nname = \"sync\"\ntopic = \"a.b\"\nplaybook = \"sync.yml\"\nretries = 3\n",
    );
    let (go, ran, mut worker) = start_sync_run(&env);

    db.sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device (test)'; END $$; \
         CREATE TRIGGER refuse BEFORE UPDATE ON relflow_runs FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    std::fs::write(&go, "").unwrap();
    wait_until(Duration::from_secs(120), "the worker to retry the write", || {
        env.worker_logs().contains("cannot record how the run ended, retrying")
    });
    db.sql("DROP TRIGGER refuse ON relflow_runs;");
    wait_until(Duration::from_secs(120), "the run to be recorded", || {
        env.runs().first().is_some_and(|r| r["status"] == "succeeded")
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    worker.wait().unwrap();

    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "once\n", "the playbook ran once");
    let runs = env.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert!(env.json(&["dead-letters", "list"]).as_array().unwrap().is_empty());
}

/// The SQLite files (queue and run store share one) made unwritable while
/// a playbook runs. SQLite has the -shm mapped, and a write through that
/// mapping used to kill the worker with SIGBUS, nothing logged (-shm alone);
/// with every file frozen, the worker retried forever instead. Either way
/// the restarted worker ran the finished playbook again. Now the worker
/// stops with a clear error, and its successor records the kept result
/// instead of running the playbook again.
fn unwritable_files_stop_the_worker_and_the_finished_run_is_kept(suffixes: &[&str]) {
    let env = Env::with_tables(
        "",
        "[queue]\nvisibility_timeout = \"2s\"\n",
        "[[rule]]\nname = \"sync\"\ntopic = \"a.b\"\nplaybook = \"sync.yml\"\n",
    );
    let (go, ran, mut worker) = start_sync_run(&env);

    let files: Vec<_> = suffixes.iter().map(|s| env.path(&format!("data/relflow.sqlite3{s}"))).collect();
    let frozen = Immutable::new(&files);
    std::fs::write(&go, "").unwrap();
    let status = wait_for(Duration::from_secs(90), "the worker to stop by itself", || worker.try_wait().unwrap());
    let logs = env.worker_logs();
    assert_eq!(status.signal(), None, "the worker died of a signal:\n{logs}");
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains("relflow.sqlite3-shm cannot be written"), "{logs}");

    drop(frozen);
    env.drain();
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "once\n", "the playbook ran once");
    let runs = env.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    assert!(env.json(&["dead-letters", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn an_unwritable_shm_file_stops_the_worker_with_an_error_not_sigbus() {
    unwritable_files_stop_the_worker_and_the_finished_run_is_kept(&["-shm"]);
}

#[test]
fn unwritable_sqlite_files_stop_the_worker_with_an_error_and_the_run_is_kept() {
    unwritable_files_stop_the_worker_and_the_finished_run_is_kept(&["", "-wal", "-shm"]);
}

/// Publishes one `a.b` message and starts a worker on it; rule `sync`'s
/// playbook appends to `ran` (returned), then waits for `go` to exist.
/// Returns once the playbook has started.
fn start_sync_run(env: &Env) -> (std::path::PathBuf, std::path::PathBuf, std::process::Child) {
    let (go, ran) = (env.path("go"), env.path("ran"));
    let task = format!(
        "    - shell: echo once >> {ran}\n    - wait_for: path={go} timeout=120\n",
        ran = ran.display(),
        go = go.display()
    );
    env.playbook("sync.yml", &common::play(&task));
    env.publish_body("a.b", &serde_json::json!({"n": 1}));
    let worker = env.spawn_worker(&[]);
    wait_until(Duration::from_secs(120), "the playbook to start", || ran.exists());
    (go, ran, worker)
}
