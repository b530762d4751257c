//! The playbook sees only the allow-listed environment. A separate test
//! binary (= process) because it sets environment variables.

mod common;

use std::time::Duration;

use common::*;
use relflow_ansible::{Outcome, Runner};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn worker_environment_does_not_leak_into_the_playbook() {
    // SAFETY of set_var: this is the only test in this binary, and it runs
    // before any other thread of ours reads the environment.
    std::env::set_var("RELFLOW_TEST_SECRET", "hunter2");
    std::env::set_var("RELFLOW_TEST_PASS", "let-through");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.env_passthrough = vec!["RELFLOW_TEST_PASS".into()];
    let runner = Runner::new(cfg).unwrap();
    let r =
        runner.run(&playbook_run("env.yml", vars(json!({})), Duration::from_secs(120)), CancellationToken::new()).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{:?}\n{}", r.error, r.log);
    assert!(!r.log.contains("hunter2"));
}
