//! Approval gates and retention, on both backends through
//! `store_contract`'s harness.

use std::sync::Arc;

use chrono::Utc;
use relflow_store::{Prune, Request, RequestKind, RunFilter, RunStatus, RunStore};

use super::{new_run, outcome, postgres, sqlite};

both!(a_gate_waits_and_racing_decisions_make_one, racing_decisions);
both!(expired_gates_are_found_until_decided, expiry);
both!(retention_prunes_old_ended_runs_in_batches, retention);
both!(log_retention_keeps_the_run, log_retention);

fn request(kind: RequestKind, run: &str, by: &str) -> Request {
    Request::new(kind, run, "m1", "r", by)
}

async fn racing_decisions(s: &dyn RunStore) {
    let later = Utc::now() + chrono::Duration::hours(1);
    assert!(s.await_approval(&new_run("g1", "m1", "r"), later).await.unwrap());
    assert!(!s.await_approval(&new_run("g2", "m1", "r"), later).await.unwrap(), "a redelivered copy waits once");
    let gate = s.get("g1").await.unwrap().unwrap();
    assert_eq!(gate.record.status, RunStatus::AwaitingApproval);
    assert!(s.get("g2").await.unwrap().is_none());
    assert_eq!(s.expires_at("g1").await.unwrap().unwrap().timestamp_millis(), later.timestamp_millis());

    // Two approvers and a denier at once: exactly one decision.
    let s: Arc<&dyn RunStore> = Arc::new(s);
    let a = request(RequestKind::Approve, "g1", "alice");
    let b = request(RequestKind::Approve, "g1", "bob");
    let d = request(RequestKind::Deny, "g1", "carol");
    let (x, y, z) = tokio::join!(s.decide(&a, None), s.decide(&b, None), s.decide(&d, Some("no")));
    let won = [x.unwrap(), y.unwrap(), z.unwrap()];
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let status = s.get("g1").await.unwrap().unwrap().record.status;
    assert_eq!(status, if won[2] { RunStatus::Denied } else { RunStatus::Approved });
    let history = s.history("m1").await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    // An approval is queued like a re-run and taken once.
    if !won[2] {
        let id = if won[0] { &a.id } else { &b.id };
        let taken = s.take_rerun(id, "m1", "new-run").await.unwrap().unwrap();
        assert_eq!(taken.kind, RequestKind::Approve);
        assert!(s.take_rerun(id, "m1", "other").await.unwrap().is_none());
        assert_eq!(s.rerun_of("new-run").await.unwrap().as_deref(), Some("g1"));
    }
    // A run that never waited cannot be decided.
    s.start(&new_run("plain", "m2", "r")).await.unwrap();
    assert!(!s.decide(&request(RequestKind::Approve, "plain", "alice"), None).await.unwrap());
}

async fn expiry(s: &dyn RunStore) {
    let past = Utc::now() - chrono::Duration::seconds(1);
    s.await_approval(&new_run("old", "m1", "r"), past).await.unwrap();
    s.await_approval(&new_run("new", "m2", "r"), Utc::now() + chrono::Duration::hours(1)).await.unwrap();
    assert_eq!(s.expired(Utc::now(), 10).await.unwrap(), vec!["old".to_owned()]);
    let expire = request(RequestKind::Expire, "old", "relflow");
    assert!(s.decide(&expire, Some("approval expired")).await.unwrap());
    assert!(s.expired(Utc::now(), 10).await.unwrap().is_empty());
    let old = s.get("old").await.unwrap().unwrap().record;
    assert_eq!((old.status, old.error.as_deref()), (RunStatus::Denied, Some("approval expired")));
    assert!(old.finished_at.is_some());
}

/// Runs that started before `cut`, and after, with their outcome.
async fn aged_runs(s: &dyn RunStore) -> chrono::DateTime<Utc> {
    for i in 0..5 {
        let id = format!("old-{i}");
        s.start(&new_run(&id, &format!("m{i}"), "r")).await.unwrap();
        s.finish(&id, &outcome(RunStatus::Failed)).await.unwrap();
    }
    s.start(&new_run("old-running", "mr", "r")).await.unwrap();
    s.await_approval(&new_run("old-gate", "mg", "r"), Utc::now() + chrono::Duration::hours(1)).await.unwrap();
    // Started strictly before the cut, whatever the clock's resolution.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let cut = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    s.start(&new_run("new", "mn", "r")).await.unwrap();
    s.finish("new", &outcome(RunStatus::Succeeded)).await.unwrap();
    cut
}

async fn retention(s: &dyn RunStore) {
    let cut = aged_runs(s).await;
    assert_eq!(s.prunable(Prune::Runs, cut).await.unwrap(), 5);
    assert_eq!(s.count(&RunFilter::default()).await.unwrap(), 8, "counting deletes nothing");
    let mut batches = Vec::new();
    loop {
        let n = s.prune(Prune::Runs, cut, 2).await.unwrap();
        batches.push(n);
        if n < 2 {
            break;
        }
    }
    assert_eq!(batches, vec![2, 2, 1]);
    let left: Vec<String> =
        s.list(&RunFilter { limit: 100, ..Default::default() }).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(left, vec!["new", "old-gate", "old-running"], "running and waiting runs are kept");
    assert!(s.expires_at("old-gate").await.unwrap().is_some());
    let summary = s.summary().await.unwrap();
    assert!(summary.iter().all(|c| c.status != RunStatus::Failed || c.count == 0), "counters follow: {summary:?}");
}

async fn log_retention(s: &dyn RunStore) {
    let cut = aged_runs(s).await;
    assert_eq!(s.prunable(Prune::Logs, cut).await.unwrap(), 5);
    assert_eq!(s.prune(Prune::Logs, cut, 100).await.unwrap(), 5);
    assert_eq!(s.prunable(Prune::Logs, cut).await.unwrap(), 0);
    let old = s.get("old-1").await.unwrap().unwrap();
    assert_eq!((old.record.status, old.log.as_str()), (RunStatus::Failed, ""));
    assert_eq!(s.get("new").await.unwrap().unwrap().log, "PLAY RECAP");
}
