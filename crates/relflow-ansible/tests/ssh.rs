//! Runs over real SSH, to a remote host in a network namespace
//! (`relflow_testkit::RemoteHost`): concurrent runs to one host each use an
//! SSH master of their own, in their own run dir, so one run ending (its
//! supervisor kills its whole tree, master included) never cuts another's
//! connection; cold and warm alike.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use relflow_ansible::{Outcome, PlaybookRun, Runner, RunnerMode};
use relflow_testkit::RemoteHost;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Control sockets now in the runs' private dirs.
fn control_sockets(work: &Path) -> Vec<PathBuf> {
    let runs = std::fs::read_dir(work.join("runner/runs")).into_iter().flatten().flatten();
    runs.flat_map(|r| std::fs::read_dir(r.path().join("cp")).into_iter().flatten().flatten().map(|e| e.path()))
        .collect()
}

fn remote_run(inventory: &Path, pause: u32) -> PlaybookRun {
    let vars = vars(json!({"pause": pause, "tag": format!("run{pause}")}));
    let mut run = playbook_run("remote.yml", vars, Duration::from_secs(300));
    run.inventory = Some(inventory.display().to_string());
    run
}

/// Run 0 connects first (with a shared control dir, its master would serve
/// everyone), then runs 1-3 start and are mid-task on the host when run 0
/// ends and its supervisor kills its tree.
async fn overlapping_runs(host: &RemoteHost, inventory: &Path, mode: RunnerMode) {
    let work = tempfile::tempdir().unwrap();
    let mut cfg = config(work.path());
    cfg.mode = mode;
    let runner = Runner::new(cfg).unwrap();
    let mut books: Vec<PlaybookRun> = [2, 8, 8, 8].into_iter().map(|pause| remote_run(inventory, pause)).collect();
    let first_log = work.path().join("run0.log");
    books[0].log_path = Some(first_log.clone());
    let run = |n: usize| runner.run(&books[n], CancellationToken::new());

    let first = run(0);
    tokio::pin!(first);
    let connected = async {
        while !std::fs::read_to_string(&first_log).unwrap_or_default().contains("TASK [hold the connection]") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        r = &mut first => panic!("run 0 ended before the others started: {:?}\n{}", r.error, r.log),
        _ = connected => {}
    }
    let all = async { tokio::join!(&mut first, run(1), run(2), run(3)) };
    tokio::pin!(all);
    let mut most = 0;
    let (a, b, c, d) = loop {
        tokio::select! {
            r = &mut all => break r,
            _ = tokio::time::sleep(Duration::from_millis(100)) => most = most.max(control_sockets(work.path()).len()),
        }
    };
    for (n, r) in [a, b, c, d].iter().enumerate() {
        assert_eq!(r.outcome, Outcome::Succeeded, "{mode:?} run {n}: {:?}\n{}", r.error, r.log);
        assert!(!r.log.contains("Shared connection"), "{mode:?} run {n}:\n{}", r.log);
        assert_eq!(r.stats.ok, 4, "{mode:?} run {n}: every task ran over SSH\n{}", r.log);
    }
    assert!(most >= 2, "{mode:?}: at most {most} control socket(s) at once: the runs did not have their own");
    let left: Vec<String> = leftover_files(work.path())
        .into_iter()
        .filter(|n| n != "relflow_warm.py" && !n.starts_with("warm-")) // the pool's own
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Each master went with its run, and every login on the host with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !host.processes().is_empty() {
        assert!(Instant::now() < deadline, "left on the host: {:?}", host.processes());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_runs_to_one_host_each_have_their_own_ssh_master() {
    let host = tokio::task::spawn_blocking(RemoteHost::start).await.unwrap();
    let user = host.add_user("runner");
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.ini");
    std::fs::write(&inventory, format!("{}\n", host.inventory_line("remote01", &user))).unwrap();
    overlapping_runs(&host, &inventory, RunnerMode::Cold).await;
    overlapping_runs(&host, &inventory, RunnerMode::Warm).await;
}
