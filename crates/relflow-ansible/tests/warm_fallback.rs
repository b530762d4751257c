//! Warm is the default, so a setup where the pool cannot start must still
//! run every playbook: cold, after one warning.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use relflow_ansible::{Outcome, Runner, RunnerMode};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_pool_that_cannot_start_leaves_every_run_cold_and_working() {
    let dir = tempfile::tempdir().unwrap();
    // A shell wrapper is a fine ansible-playbook for a cold run, but not a
    // Python entry point the pool could import.
    let wrapper = dir.path().join("ansible-playbook");
    std::fs::write(&wrapper, format!("#!/bin/sh\nexec {} \"$@\"\n", ansible_playbook().display())).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = config(dir.path());
    cfg.ansible_playbook = wrapper;
    cfg.mode = RunnerMode::Warm;
    let runner = Runner::new(cfg).unwrap();
    runner.warm_up(&playbooks_dir()).await;
    for n in 0..2 {
        let run = playbook_run("results.yml", vars(json!({"n": n})), Duration::from_secs(120));
        let r = runner.run(&run, CancellationToken::new()).await;
        assert_eq!(r.outcome, Outcome::Succeeded, "run {n}:\n{}", r.log);
    }
    assert_eq!(runner.warm_generation(), Some(0), "no pool was ever started");
}
