//! Shared helpers for the integration tests: they run the real
//! `ansible-playbook` from the project's venv, no mocks.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use relflow_ansible::{ExtraVars, PlaybookRun, RunInfo, Runner, RunnerConfig};
pub use relflow_testkit::ansible_playbook;
use serde_json::Value;

pub fn playbooks_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/playbooks")
}

pub fn supervisor() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_relflow-supervise"))
}

pub fn config(work_dir: &std::path::Path) -> RunnerConfig {
    let mut cfg = RunnerConfig::new(ansible_playbook(), work_dir.join("runner"));
    cfg.supervisor = supervisor();
    cfg.kill_grace = Duration::from_secs(2);
    cfg
}

pub fn runner(work_dir: &std::path::Path) -> Runner {
    Runner::new(config(work_dir)).expect("runner")
}

pub fn vars(msg: Value) -> ExtraVars {
    ExtraVars {
        msg: msg.as_object().cloned().expect("msg must be an object"),
        topic: "org.example.test".into(),
        msg_id: "id-1".into(),
        headers: serde_json::Map::new(),
        sent_at: None,
        relflow: RunInfo { run_id: "run-1".into(), rule: "test".into(), attempt: 1 },
        msgs: None,
        loopabull: None,
    }
}

pub fn playbook_run(name: &str, vars: ExtraVars, timeout: Duration) -> PlaybookRun {
    PlaybookRun {
        playbook: playbooks_dir().join(name),
        inventory: Some("localhost,".into()),
        limit: None,
        timeout,
        vars,
        cwd: playbooks_dir(),
        log_path: None,
        allow_no_hosts: false,
    }
}

/// Pids of processes whose argv is exactly `argv`.
pub fn procs_with_argv(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else { continue };
        if std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| c == want) {
            out.push(pid);
        }
    }
    out
}

/// Files left in the runner's work dir other than the callback plugin dir
/// and the (empty but for its lock file) dir of per-run dirs.
pub fn leftover_files(work_dir: &std::path::Path) -> Vec<String> {
    let names = |dir: PathBuf| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let runner = work_dir.join("runner");
    let mut left: Vec<String> =
        names(runner.clone()).into_iter().filter(|n| n != "callback_plugins" && n != "runs").collect();
    left.extend(names(runner.join("runs")).into_iter().filter(|n| n != ".lock").map(|n| format!("runs/{n}")));
    left
}

/// The vars files of runs in progress under the runner's work dir.
pub fn vars_files(work_dir: &std::path::Path) -> Vec<PathBuf> {
    let runs = std::fs::read_dir(work_dir.join("runs")).into_iter().flatten().flatten();
    runs.map(|e| e.path().join("vars.yml")).filter(|p| p.exists()).collect()
}
