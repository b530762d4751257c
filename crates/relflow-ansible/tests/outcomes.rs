//! What a run means for its message, against the real ansible-playbook: no
//! host matched (a play's pattern, or a `--limit`), a failure the playbook
//! marked permanent, a host that cannot be reached.

mod common;

use std::time::Duration;

use common::*;
use relflow_ansible::{Outcome, RunResult};
use serde_json::json;
use tokio_util::sync::CancellationToken;

async fn run(run: &relflow_ansible::PlaybookRun) -> RunResult {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path()).run(run, CancellationToken::new()).await;
    assert!(leftover_files(dir.path()).is_empty(), "{:?}", leftover_files(dir.path()));
    r
}

fn error(r: &RunResult) -> String {
    r.error.clone().unwrap_or_default()
}

#[tokio::test]
async fn a_play_that_matches_no_host_fails_permanently_unless_allowed() {
    let mut book = playbook_run("no_hosts.yml", vars(json!({})), Duration::from_secs(120));
    let r = run(&book).await;
    assert_eq!((r.outcome, r.permanent, r.exit_code), (Outcome::Failed, true, Some(0)), "{}", r.log);
    assert!(error(&r).starts_with("no hosts matched: play \"compose_hosts\" (hosts: compose_hosts)"), "{r:?}");

    book.allow_no_hosts = true;
    let r = run(&book).await;
    assert_eq!((r.outcome, r.permanent, r.error), (Outcome::Succeeded, false, None), "{}", r.log);
}

#[tokio::test]
async fn a_limit_that_matches_no_host_fails_permanently_unless_allowed() {
    let mut book = playbook_run("results.yml", vars(json!({})), Duration::from_secs(120));
    book.limit = Some("compose-x86_64".into());
    let r = run(&book).await;
    assert_eq!((r.outcome, r.permanent), (Outcome::Failed, true), "{}", r.log);
    assert!(error(&r).starts_with("no hosts matched: the inventory has no host for --limit=\"compose-x86_64\""));

    book.allow_no_hosts = true;
    let r = run(&book).await;
    assert_eq!((r.outcome, r.permanent, r.tasks.len()), (Outcome::Succeeded, false, 0), "{}", r.log);
}

#[tokio::test]
async fn the_playbook_marks_a_refused_input_permanent_with_the_reason() {
    let r = run(&playbook_run("permanent.yml", vars(json!({"path": "../../etc", "rc": 2})), Duration::from_secs(120)))
        .await;
    assert_eq!((r.outcome, r.permanent), (Outcome::Failed, true), "{}", r.log);
    assert_eq!(
        error(&r),
        "error: ../../etc is outside the allowed roots (marked permanent by task 'exit 2 means the input was \
         refused; a retry would be too' on localhost)"
    );

    // Any other exit is an ordinary, retryable failure.
    let r = run(&playbook_run("permanent.yml", vars(json!({"path": "/srv", "rc": 4})), Duration::from_secs(120))).await;
    assert_eq!((r.outcome, r.permanent), (Outcome::Failed, false), "{}", r.log);
    assert!(error(&r).starts_with("task 'fail with the command's error' failed on localhost"), "{r:?}");
}

#[tokio::test]
async fn an_unreachable_host_is_a_retryable_failure_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1 of the loopback address.
    let inventory = dir.path().join("inventory.ini");
    std::fs::write(&inventory, "ghost ansible_host=127.0.0.1 ansible_port=1 ansible_user=nobody\n").unwrap();
    let mut book = playbook_run("remote.yml", vars(json!({"pause": 0, "tag": "x"})), Duration::from_secs(120));
    book.inventory = Some(inventory.display().to_string());
    let r = run(&book).await;
    assert_eq!((r.outcome, r.permanent, r.exit_code), (Outcome::Failed, false, Some(4)), "{}", r.log);
    let error = error(&r);
    assert!(error.starts_with("host ghost unreachable (task 'first contact'): "), "{error}");
    assert!(error.contains("Connection refused"), "{error}");
}
