//! End-to-end tests of the runner against the real ansible-playbook.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;
use relflow_ansible::{Outcome, RunResult, Runner, RunnerConfig, Stats, TaskStatus};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Runs `run` while watching /proc for the given argvs and the work dir for
/// the vars file. Returns the result, which argvs were seen alive during the
/// run, and the vars file's mode if it was seen.
async fn run_watching(
    runner: &Runner,
    run: &relflow_ansible::PlaybookRun,
    cancel: CancellationToken,
    watch: &[&[&str]],
) -> (RunResult, Vec<bool>, Option<u32>) {
    let work = runner.config().work_dir.clone();
    let fut = runner.run(run, cancel);
    tokio::pin!(fut);
    let mut seen = vec![false; watch.len()];
    let mut mode = None;
    loop {
        tokio::select! {
            r = &mut fut => return (r, seen, mode),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                for (i, argv) in watch.iter().enumerate() {
                    seen[i] |= !procs_with_argv(argv).is_empty();
                }
                for vars in vars_files(&work) {
                    if let Ok(m) = std::fs::metadata(vars) { mode = Some(m.permissions().mode() & 0o777); }
                }
            }
        }
    }
}

#[tokio::test]
async fn payload_cannot_inject_variables_or_jinja() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path());
    let pwned = |n: &str| dir.path().join(format!("pwned-{n}"));
    let touch = |n: &str| format!("{{{{ lookup('pipe', 'touch {}') }}}}", pwned(n).display());
    let body = json!({
        "ansible_connection": "bogus",
        "ansible_python_interpreter": "/nonexistent/python",
        "evil": touch("value"),
        (touch("key")): "key with jinja",
        "nested": {"deep": [touch("list"), {"x": touch("deep")}]},
        "n": 3, "f": 1.5, "t": true, "z": null, "list": [1, 2, 3],
        "big": u64::MAX, "neg": i64::MIN, "huge": 1e300, "tiny": -2.5e-7,
        "text": "quote\" backslash\\ nl\n cr\r tab\t ctl\u{1}\u{1b}\u{7f} nel\u{85} ls\u{2028} bom\u{feff} é € 😀 {% raw %}",
        "": "empty key", "empty": "", "obj": {},
        // Strings YAML 1.1 would read as other types if they were unquoted.
        "yes": "yes", "num": "12", "null": "null", "tilde": "~", "date": "2024-01-01",
        "float": "1.5e3", "octal": "0o17", "True": "True", "<<": "merge key?", "=": "value key?",
        "bang": "!", "nlyes": "yes\n", "ts": "2001-12-14 21:59:43.10 -5",
    });
    let mut vars = vars(body.clone());
    vars.msg_id = touch("msg_id");
    vars.sent_at = Some("2024-01-01T00:00:00Z".into());
    vars.headers = json!({"h": "v", "j": touch("header")}).as_object().cloned().unwrap();
    vars.relflow.rule = "inject".into();
    vars.relflow.attempt = 2;
    let run = playbook_run("injection.yml", vars, Duration::from_secs(120));

    let r = runner.run(&run, CancellationToken::new()).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{:?}\n{}", r.error, r.log);
    for n in ["value", "key", "list", "deep", "msg_id", "header"] {
        assert!(!pwned(n).exists(), "Jinja in the payload ({n}) was evaluated");
    }
    // Printed literally by `debug: var=msg`.
    assert!(r.log.contains("lookup('pipe', 'touch "), "{}", r.log);
    // `msg | to_json` gives back exactly the body: the escaping round-trips.
    let echoed = r.tasks.iter().find(|t| t.task == "msg as json").and_then(|t| t.msg.clone());
    let echoed: Value = serde_json::from_str(&echoed.expect("msg as json result")).unwrap();
    assert_eq!(same_floats(echoed), same_floats(body));
}

/// Floats in one spelling: with serde_json's `arbitrary_precision` a Number
/// compares by its text, and Python writes `-2.5e-07` for `-2.5e-7`.
fn same_floats(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            n.as_f64().and_then(serde_json::Number::from_f64).map_or(Value::Number(n), Value::Number)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(same_floats).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, same_floats(v))).collect()),
        other => other,
    }
}

#[tokio::test]
async fn timeout_kills_the_whole_tree_and_removes_the_vars_file() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path());
    // Long enough for ansible to reach the task on a loaded 2-core machine:
    // the test is about what the timeout kills, not how soon it fires.
    let run = playbook_run("sleep.yml", vars(json!({"secs": 4242})), Duration::from_secs(20));
    let (r, seen, mode) = run_watching(&runner, &run, CancellationToken::new(), &[&["sleep", "4242"]]).await;
    assert_eq!(r.outcome, Outcome::TimedOut, "{:?}\n{}", r.error, r.log);
    assert_eq!(r.error.as_deref(), Some("timed out after 20s"));
    assert!(seen[0], "the task never started; the test proves nothing\n{}", r.log);
    assert!(procs_with_argv(&["sleep", "4242"]).is_empty(), "sleep 4242 survived the timeout");
    assert_eq!(mode, Some(0o600), "vars file mode");
    assert!(leftover_files(dir.path()).is_empty(), "left behind: {:?}", leftover_files(dir.path()));
}

#[tokio::test]
async fn timeout_kills_detached_setsid_processes() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path());
    let run = playbook_run("setsid.yml", vars(json!({"detached": 4243, "secs": 4246})), Duration::from_secs(25));
    let watch: &[&[&str]] = &[&["sleep", "4243"], &["sleep", "4246"]];
    let (r, seen, _) = run_watching(&runner, &run, CancellationToken::new(), watch).await;
    assert_eq!(r.outcome, Outcome::TimedOut, "{:?}\n{}", r.error, r.log);
    assert_eq!(seen, [true, true], "the detached process never started\n{}", r.log);
    assert!(procs_with_argv(&["sleep", "4243"]).is_empty(), "detached sleep 4243 survived");
    assert!(procs_with_argv(&["sleep", "4246"]).is_empty(), "sleep 4246 survived");
    // The finished task was recorded before the kill.
    assert!(r.tasks.iter().any(|t| t.task == "detach a daemon" && t.status == TaskStatus::Changed), "{:?}", r.tasks);
}

#[tokio::test]
async fn cancel_tears_down_like_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path());
    let run = playbook_run("sleep.yml", vars(json!({"secs": 4245})), Duration::from_secs(120));
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while procs_with_argv(&["sleep", "4245"]).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        trigger.cancel();
    });
    let r = runner.run(&run, cancel).await;
    assert_eq!(r.outcome, Outcome::Cancelled, "{:?}\n{}", r.error, r.log);
    assert!(procs_with_argv(&["sleep", "4245"]).is_empty(), "sleep 4245 survived the cancel");
    assert!(leftover_files(dir.path()).is_empty());
}

/// The worker is SIGKILLed: PDEATHSIG makes the supervisor tear the run down.
#[tokio::test]
async fn killing_the_supervisors_parent_kills_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut parent = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(r#""$0" __supervise 2000 -- "$1" --inventory=localhost, -e '{"msg": {"secs": 4244}}' "$2" >/dev/null 2>&1 & wait"#)
        .arg(supervisor())
        .arg(ansible_playbook())
        .arg(playbooks_dir().join("sleep.yml"))
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while procs_with_argv(&["sleep", "4244"]).is_empty() {
        assert!(Instant::now() < deadline, "sleep 4244 never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    parent.kill().unwrap(); // SIGKILL
    parent.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !procs_with_argv(&["sleep", "4244"]).is_empty() {
        assert!(Instant::now() < deadline, "sleep 4244 survived the death of the worker");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn task_results_and_stats_and_live_log() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path());
    let mut run = playbook_run("results.yml", vars(json!({})), Duration::from_secs(120));
    let log_path = dir.path().join("live.log");
    run.log_path = Some(log_path.clone());
    let r = runner.run(&run, CancellationToken::new()).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{:?}\n{}", r.error, r.log);
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.error, None);
    let got: Vec<_> = r.tasks.iter().map(|t| (t.host.as_str(), t.task.as_str(), t.status)).collect();
    assert_eq!(
        got,
        [
            ("localhost", "say hello", TaskStatus::Ok),
            ("localhost", "change something", TaskStatus::Changed),
            ("localhost", "never runs", TaskStatus::Skipped),
        ]
    );
    assert_eq!(r.tasks[0].msg.as_deref(), Some("hello"));
    assert!(r.tasks.iter().all(|t| t.play == "localhost"), "{:?}", r.tasks);
    assert!(r.tasks.iter().all(|t| t.duration_ms.is_some()), "every task has its duration: {:?}", r.tasks);
    assert_eq!(r.stats, Stats { ok: 2, changed: 1, failed: 0, skipped: 1, unreachable: 0 });
    assert!(r.log.contains("PLAY RECAP"), "{}", r.log);
    assert!(!r.log.contains("\x1b["), "colour codes in the log");
    let live = std::fs::read_to_string(&log_path).unwrap();
    assert!(live.contains("PLAY RECAP") && live.contains("TASK [say hello]"), "{live}");
}

#[tokio::test]
async fn failing_task_gives_failed_with_reason() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path());
    let r = runner
        .run(&playbook_run("fail.yml", vars(json!({})), Duration::from_secs(120)), CancellationToken::new())
        .await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.log);
    assert_eq!(r.exit_code, Some(2));
    let error = r.error.unwrap_or_default();
    assert!(error.contains("deploy the thing") && error.contains("deploy broke"), "{error}");
    assert_eq!(r.stats.failed, 1);
    assert_eq!(r.tasks.last().map(|t| t.status), Some(TaskStatus::Failed));
    assert!(leftover_files(dir.path()).is_empty());
}

#[tokio::test]
async fn syntax_error_gives_failed_with_ansibles_message() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path());
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "- hosts: localhost\n  tasks:\n    - nosuchmodule_xyz: {}\n").unwrap();
    let mut run = playbook_run("fail.yml", vars(json!({})), Duration::from_secs(120));
    run.playbook = bad;
    let r = runner.run(&run, CancellationToken::new()).await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.log);
    let error = r.error.unwrap_or_default();
    assert!(
        error.contains("ansible-playbook failed (exit code 4)") && error.contains("nosuchmodule_xyz"),
        "{error}\n{}",
        r.log
    );
}

#[tokio::test]
async fn missing_playbook_or_program_is_spawn_failed() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path());
    let mut run = playbook_run("results.yml", vars(json!({})), Duration::from_secs(60));
    run.playbook = playbooks_dir().join("does-not-exist.yml");
    let r = runner.run(&run, CancellationToken::new()).await;
    assert_eq!(r.outcome, Outcome::SpawnFailed);
    assert!(r.error.as_deref().unwrap_or_default().contains("playbook not found"), "{:?}", r.error);

    let run = playbook_run("results.yml", vars(json!({})), Duration::from_secs(60));
    let mut cfg: RunnerConfig = config(dir.path());
    cfg.ansible_playbook = "/nonexistent/bin/ansible-playbook".into();
    let r = Runner::new(cfg).unwrap().run(&run, CancellationToken::new()).await;
    assert_eq!(r.outcome, Outcome::SpawnFailed, "{}", r.log);
    let error = r.error.unwrap_or_default();
    assert!(error.contains("/nonexistent/bin/ansible-playbook"), "{error}");

    let mut cfg = config(dir.path());
    cfg.supervisor = "/nonexistent/relflow".into();
    let r = Runner::new(cfg).unwrap().run(&run, CancellationToken::new()).await;
    assert_eq!(r.outcome, Outcome::SpawnFailed);
    assert!(r.error.unwrap_or_default().contains("cannot start supervisor"));
    assert!(leftover_files(dir.path()).is_empty(), "{:?}", leftover_files(dir.path()));
}

#[test]
fn outcome_and_status_serialise_as_lowercase_strings() {
    assert_eq!(serde_json::to_value(Outcome::TimedOut).unwrap(), "timedout");
    assert_eq!(Outcome::SpawnFailed.to_string(), "spawnfailed");
    assert_eq!(serde_json::to_value(TaskStatus::Changed).unwrap(), "changed");
}
