//! The warm pool gives the same results as the cold runner, against the real
//! ansible-playbook: example playbooks, a hostile payload, failures,
//! timeouts (whole tree killed), cancel, the environment allow-list, and a
//! restart when the ansible config changes.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use relflow_ansible::{Outcome, PlaybookRun, RunResult, Runner, RunnerMode, TaskResult};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn runners(dir: &Path, tweak: impl Fn(&mut relflow_ansible::RunnerConfig)) -> (Runner, Runner) {
    let mut cold = config(&dir.join("cold"));
    tweak(&mut cold);
    let mut warm = config(&dir.join("warm"));
    warm.mode = RunnerMode::Warm;
    tweak(&mut warm);
    (Runner::new(cold).expect("cold runner"), Runner::new(warm).expect("warm runner"))
}

/// Runs `run` cold, then warm, and checks that everything recorded matches.
async fn same_both_ways(cold: &Runner, warm: &Runner, run: &PlaybookRun) -> RunResult {
    let c = cold.run(run, CancellationToken::new()).await;
    let w = warm.run(run, CancellationToken::new()).await;
    assert_same(&c, &w);
    assert_eq!(warm.warm_generation(), Some(1), "the warm run did not use the pool\n{}", w.log);
    w
}

/// Task results without their durations, the one thing that may differ
/// between two runs; every task must have one.
fn timeless(tasks: &[TaskResult]) -> Vec<TaskResult> {
    assert!(tasks.iter().all(|t| t.duration_ms.is_some()), "a task without its duration: {tasks:?}");
    tasks.iter().map(|t| TaskResult { duration_ms: None, ..t.clone() }).collect()
}

fn assert_same(c: &RunResult, w: &RunResult) {
    assert_eq!((c.outcome, c.exit_code), (w.outcome, w.exit_code), "cold log:\n{}\nwarm log:\n{}", c.log, w.log);
    assert_eq!(timeless(&c.tasks), timeless(&w.tasks), "cold log:\n{}\nwarm log:\n{}", c.log, w.log);
    assert_eq!(c.stats, w.stats);
    assert_eq!(c.error, w.error);
    assert_eq!(c.log, w.log);
}

/// Files the run left in a runner's work dir (the pool's own are expected).
fn leftovers(work: &Path) -> Vec<String> {
    leftover_files(work).into_iter().filter(|n| n != "relflow_warm.py" && !n.starts_with("warm-")).collect()
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[tokio::test]
async fn example_playbooks_give_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let (cold, warm) = runners(dir.path(), |c| c.ansible_config = Some(examples().join("ansible.cfg")));
    for (playbook, message) in
        [("compose_finished.yml", "compose-finished.json"), ("koji_build_complete.yml", "koji-build-complete.json")]
    {
        let text = std::fs::read_to_string(examples().join("messages").join(message)).unwrap();
        let envelope: Value = serde_json::from_str(&text).unwrap();
        let mut run = playbook_run(playbook, vars(envelope["msg"].clone()), Duration::from_secs(120));
        run.playbook = examples().join("playbooks").join(playbook);
        run.cwd = examples().join("playbooks");
        let r = same_both_ways(&cold, &warm, &run).await;
        assert_eq!(r.outcome, Outcome::Succeeded, "{playbook}: {:?}\n{}", r.error, r.log);
        assert!(!r.tasks.is_empty());
    }
    assert!(leftovers(&dir.path().join("warm")).is_empty(), "{:?}", leftovers(&dir.path().join("warm")));
}

#[tokio::test]
async fn results_failures_and_syntax_errors_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (cold, warm) = runners(dir.path(), |_| {});
    for (playbook, outcome) in [("results.yml", Outcome::Succeeded), ("fail.yml", Outcome::Failed)] {
        let run = playbook_run(playbook, vars(json!({})), Duration::from_secs(120));
        let r = same_both_ways(&cold, &warm, &run).await;
        assert_eq!(r.outcome, outcome, "{playbook}\n{}", r.log);
    }
    // ansible's own error (no such playbook file for ansible, but it exists for us).
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "- hosts: localhost\n  tasks: [ {debug: }\n").unwrap();
    let mut run = playbook_run("results.yml", vars(json!({})), Duration::from_secs(120));
    run.playbook = bad;
    let r = same_both_ways(&cold, &warm, &run).await;
    assert_eq!(r.outcome, Outcome::Failed);
}

#[tokio::test]
async fn hostile_payload_is_data_in_the_warm_pool_too() {
    let dir = tempfile::tempdir().unwrap();
    let (cold, warm) = runners(dir.path(), |_| {});
    let pwned = |n: &str| dir.path().join(format!("pwned-{n}"));
    let touch = |n: &str| format!("{{{{ lookup('pipe', 'touch {}') }}}}", pwned(n).display());
    let body = json!({
        "ansible_connection": "bogus",
        "ansible_python_interpreter": "/nonexistent/python",
        "evil": touch("value"),
        (touch("key")): "key with jinja",
        "nested": {"deep": [touch("list"), {"x": touch("deep")}]},
        "n": 3, "f": 1.5, "t": true, "z": null, "list": [1, 2, 3],
        "text": "quote\" backslash\\ nl\n ctl\u{1} é 😀 {% raw %}",
        "": "empty key", "empty": "",
        "yes": "yes", "num": "12", "null": "null", "tilde": "~", "date": "2024-01-01",
    });
    let mut vars = vars(body.clone());
    vars.msg_id = touch("msg_id");
    vars.sent_at = Some("2024-01-01T00:00:00Z".into());
    vars.headers = json!({"h": "v", "j": touch("header")}).as_object().cloned().unwrap();
    vars.relflow.rule = "inject".into();
    vars.relflow.attempt = 2;
    let run = playbook_run("injection.yml", vars, Duration::from_secs(120));
    let r = same_both_ways(&cold, &warm, &run).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{:?}\n{}", r.error, r.log);
    for n in ["value", "key", "list", "deep", "msg_id", "header"] {
        assert!(!pwned(n).exists(), "Jinja in the payload ({n}) was evaluated");
    }
    let echoed = r.tasks.iter().find(|t| t.task == "msg as json").and_then(|t| t.msg.clone());
    assert_eq!(serde_json::from_str::<Value>(&echoed.expect("msg as json")).unwrap(), body);
}

#[tokio::test]
async fn warm_timeout_kills_the_whole_tree_like_cold() {
    let dir = tempfile::tempdir().unwrap();
    let (cold, warm) = runners(dir.path(), |_| {});
    let mut results = Vec::new();
    for (runner, detached, secs) in [(&cold, 4343, 4346), (&warm, 4353, 4356)] {
        let run = playbook_run("setsid.yml", vars(json!({"detached": detached, "secs": secs})), Duration::from_secs(8));
        let r = runner.run(&run, CancellationToken::new()).await;
        let (d, s) = (detached.to_string(), secs.to_string());
        assert!(procs_with_argv(&["sleep", &d]).is_empty(), "detached sleep {d} survived");
        assert!(procs_with_argv(&["sleep", &s]).is_empty(), "sleep {s} survived");
        results.push(r);
    }
    let (c, w) = (&results[0], &results[1]);
    assert_eq!(w.outcome, Outcome::TimedOut, "{:?}\n{}", w.error, w.log);
    // The detached daemon's task finished before the kill, in both.
    assert!(w.tasks.iter().any(|t| t.task == "detach a daemon"), "the daemon never started\n{}", w.log);
    // What happens after the SIGTERM is a race inside ansible itself, cold
    // as well: if it notices its worker die first it records the killed task
    // as failed, prints a recap and exits 2, else it dies with 143. So compare
    // what finished before the timeout, and how the run ended.
    assert_eq!((c.outcome, &c.error), (w.outcome, &w.error));
    assert_eq!(timeless(&c.tasks).first(), timeless(&w.tasks).first());
    assert!(leftovers(&dir.path().join("warm")).is_empty(), "{:?}", leftovers(&dir.path().join("warm")));
}

#[tokio::test]
async fn warm_cancel_and_dropped_run_tear_down() {
    let dir = tempfile::tempdir().unwrap();
    let (_, warm) = runners(dir.path(), |_| {});
    let run = playbook_run("sleep.yml", vars(json!({"secs": 4365})), Duration::from_secs(300));
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let watcher = tokio::spawn(async move {
        while procs_with_argv(&["sleep", "4365"]).is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        trigger.cancel();
    });
    let r = warm.run(&run, cancel).await;
    watcher.abort();
    assert_eq!(r.outcome, Outcome::Cancelled, "{:?}\n{}", r.error, r.log);
    assert!(procs_with_argv(&["sleep", "4365"]).is_empty(), "sleep survived the cancel");

    // A run future dropped mid-run: the pool sees the connection close and
    // tears the run down.
    let run = playbook_run("sleep.yml", vars(json!({"secs": 4366})), Duration::from_secs(300));
    let mut fut = Box::pin(warm.run(&run, CancellationToken::new()));
    loop {
        tokio::select! {
            r = &mut fut => panic!("the run ended by itself: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if !procs_with_argv(&["sleep", "4366"]).is_empty() { break; }
            }
        }
    }
    drop(fut);
    while !procs_with_argv(&["sleep", "4366"]).is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(leftovers(&dir.path().join("warm")).is_empty(), "{:?}", leftovers(&dir.path().join("warm")));
}

#[tokio::test]
async fn warm_environment_is_the_allow_list() {
    // Set before any runner exists; no other test in this binary reads them.
    std::env::set_var("RELFLOW_TEST_SECRET", "do-not-leak");
    std::env::set_var("RELFLOW_TEST_PASS", "let-through");
    let dir = tempfile::tempdir().unwrap();
    let (cold, warm) = runners(dir.path(), |c| c.env_passthrough = vec!["RELFLOW_TEST_PASS".into()]);
    let run = playbook_run("env.yml", vars(json!({})), Duration::from_secs(120));
    let r = same_both_ways(&cold, &warm, &run).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{:?}\n{}", r.error, r.log);
    assert!(!r.log.contains("do-not-leak"));
}

#[tokio::test]
async fn pool_restarts_when_the_ansible_config_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ansible.cfg");
    std::fs::write(&cfg, "[defaults]\nnocows = True\n").unwrap();
    let (_, warm) = runners(dir.path(), |c| c.ansible_config = Some(cfg.clone()));
    let run = playbook_run("results.yml", vars(json!({})), Duration::from_secs(120));
    warm.warm_up(&run.cwd).await;
    assert_eq!(warm.warm_generation(), Some(1));
    assert_eq!(warm.run(&run, CancellationToken::new()).await.outcome, Outcome::Succeeded);
    assert_eq!(warm.warm_generation(), Some(1), "an unchanged config must reuse the pool");
    // A different size is a change whatever the mtime granularity.
    std::fs::write(&cfg, "[defaults]\nnocows = True\nretry_files_enabled = False\n").unwrap();
    let r = warm.run(&run, CancellationToken::new()).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{}", r.log);
    assert_eq!(warm.warm_generation(), Some(2), "the pool was not restarted");
}
