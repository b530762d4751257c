//! A run's private dir outlives neither its run nor a killed worker: the
//! real supervisor holds it while it lives, removes it when the worker died
//! under it, and the next start sweeps what nobody holds any more.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A run dir as a killed worker leaves it: under `<work>/runner/runs`, with
/// the message's vars file in it.
fn left_behind(work: &Path, name: &str) -> PathBuf {
    let dir = work.join("runner/runs").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("vars.yml"), "{\"msg\": {\"secret\": 1}}").unwrap();
    dir
}

fn wait_gone(what: &str, mut gone: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !gone() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_next_start_sweeps_a_run_dir_only_once_its_supervisor_is_gone() {
    let work = tempfile::tempdir().unwrap();
    runner(work.path()); // creates runner/runs
    let dir = left_behind(work.path(), "4249-abcdef");
    let mut supervisor = Command::new(supervisor())
        .args(["__supervise", "1000", "--run-dir"])
        .arg(&dir)
        .args(["--", "sleep", "4249"])
        .spawn()
        .unwrap();
    wait_gone("sleep 4249 never started", || !procs_with_argv(&["sleep", "4249"]).is_empty());

    runner(work.path());
    assert!(dir.join("vars.yml").exists(), "swept while its supervisor was alive");

    // SIGKILL: the supervisor cannot clean up; its orphan is ours to end.
    supervisor.kill().unwrap();
    supervisor.wait().unwrap();
    for pid in procs_with_argv(&["sleep", "4249"]) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    assert!(dir.exists());
    runner(work.path());
    assert!(!dir.exists(), "the next start left the dead run's dir");
    assert!(leftover_files(work.path()).is_empty(), "{:?}", leftover_files(work.path()));
}

#[test]
fn a_supervisor_whose_worker_died_removes_the_run_dir_itself() {
    let work = tempfile::tempdir().unwrap();
    runner(work.path());
    let dir = left_behind(work.path(), "4250-abcdef");
    // The shell stands in for the worker: the supervisor's parent.
    let mut worker = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#""$0" __supervise 1000 --run-dir "$1" -- sleep 4250 & wait"#)
        .arg(supervisor())
        .arg(&dir)
        .spawn()
        .unwrap();
    wait_gone("sleep 4250 never started", || !procs_with_argv(&["sleep", "4250"]).is_empty());
    worker.kill().unwrap();
    worker.wait().unwrap();
    wait_gone("the run survived its worker", || procs_with_argv(&["sleep", "4250"]).is_empty());
    wait_gone("the orphaned supervisor left its run dir", || !dir.exists());
}
