//! The SQLite run store, on a real file.

use relflow_store::{NewRun, RunFilter, RunOutcome, RunStatus, RunStore, SqliteStore, StoreError, TaskCounts};
use serde_json::json;

fn new_run(id: &str, message_id: &str, rule: &str) -> NewRun {
    NewRun {
        id: id.into(),
        message_id: message_id.into(),
        topic: "org.fedoraproject.prod.pungi.compose.status.change".into(),
        rule: rule.into(),
        playbook: "compose.yml".into(),
        attempt: 1,
        worker: "host:1".into(),
        message: json!({"id": message_id}),
    }
}

fn outcome(status: RunStatus) -> RunOutcome {
    RunOutcome {
        status,
        exit_code: Some(if status == RunStatus::Succeeded { 0 } else { 2 }),
        counts: TaskCounts { ok: 3, changed: 1, ..Default::default() },
        tasks: json!([{"task": "t", "status": "ok"}]),
        log: "PLAY RECAP".into(),
        error: (status != RunStatus::Succeeded).then(|| "task t failed".into()),
    }
}

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path().join("runs.sqlite3")).unwrap();
    (dir, s)
}

#[tokio::test]
async fn a_run_is_recorded_from_start_to_finish() {
    let (_d, s) = store();
    s.start(&new_run("aaaa-1", "m1", "r")).await.unwrap();
    let running = s.get("aaaa-1").await.unwrap().unwrap();
    assert_eq!(running.record.status, RunStatus::Running);
    assert!(running.record.finished_at.is_none());

    s.finish("aaaa-1", &outcome(RunStatus::Succeeded)).await.unwrap();
    let done = s.get("aaaa-1").await.unwrap().unwrap();
    assert_eq!(done.record.status, RunStatus::Succeeded);
    assert_eq!(done.record.exit_code, Some(0));
    assert_eq!(done.record.counts.ok, 3);
    assert_eq!(done.log, "PLAY RECAP");
    assert_eq!(done.tasks[0]["task"], "t");
    assert_eq!(done.message["id"], "m1");
    assert!(done.record.finished_at.unwrap() >= done.record.started_at);
}

#[tokio::test]
async fn only_a_success_counts_as_done_for_a_message_and_rule() {
    let (_d, s) = store();
    assert!(!s.has_succeeded("m1", "r").await.unwrap());
    s.start(&new_run("1", "m1", "r")).await.unwrap();
    s.finish("1", &outcome(RunStatus::Failed)).await.unwrap();
    assert!(!s.has_succeeded("m1", "r").await.unwrap(), "a failure is retried");
    s.start(&new_run("2", "m1", "r")).await.unwrap();
    s.finish("2", &outcome(RunStatus::Succeeded)).await.unwrap();
    assert!(s.has_succeeded("m1", "r").await.unwrap());
    assert!(!s.has_succeeded("m1", "other-rule").await.unwrap());
    assert!(!s.has_succeeded("m2", "r").await.unwrap());
}

#[tokio::test]
async fn a_redelivered_run_abandons_the_dead_workers_run() {
    let (_d, s) = store();
    s.start(&new_run("dead", "m1", "r")).await.unwrap();
    s.start(&new_run("alive", "m1", "r")).await.unwrap();
    let dead = s.get("dead").await.unwrap().unwrap();
    assert_eq!(dead.record.status, RunStatus::Abandoned);
    assert!(dead.record.error.unwrap().contains("redelivered"));
    assert_eq!(s.get("alive").await.unwrap().unwrap().record.status, RunStatus::Running);
}

#[tokio::test]
async fn list_filters_and_pages_newest_first() {
    let (_d, s) = store();
    for i in 0..5 {
        s.start(&new_run(&format!("run-{i}"), &format!("m{i}"), if i % 2 == 0 { "even" } else { "odd" })).await.unwrap();
        s.finish(&format!("run-{i}"), &outcome(if i == 4 { RunStatus::Failed } else { RunStatus::Succeeded }))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let all = s.list(&RunFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["run-4", "run-3", "run-2", "run-1", "run-0"]);
    let even = s.list(&RunFilter { rule: Some("even".into()), ..Default::default() }).await.unwrap();
    assert_eq!(even.len(), 3);
    let failed = s.list(&RunFilter { status: Some(RunStatus::Failed), ..Default::default() }).await.unwrap();
    assert_eq!(failed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["run-4"]);
    let page = s.list(&RunFilter { limit: 2, offset: 2, ..Default::default() }).await.unwrap();
    assert_eq!(page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["run-2", "run-1"]);
    let future = RunFilter { since: Some(chrono::Utc::now() + chrono::Duration::hours(1)), ..Default::default() };
    assert!(s.list(&future).await.unwrap().is_empty());
}

#[tokio::test]
async fn get_by_unique_prefix() {
    let (_d, s) = store();
    s.start(&new_run("abc123", "m1", "r")).await.unwrap();
    s.start(&new_run("abd456", "m2", "r")).await.unwrap();
    assert_eq!(s.get("abc").await.unwrap().unwrap().record.id, "abc123");
    assert!(matches!(s.get("ab").await, Err(StoreError::Ambiguous(_))));
    assert!(s.get("zzz").await.unwrap().is_none());
    // LIKE wildcards in the input are not wildcards.
    assert!(matches!(s.get("a%").await, Err(StoreError::Ambiguous(_))), "`a%` reads as the prefix `a`");
}

#[tokio::test]
async fn noop_counter() {
    let (_d, s) = store();
    assert_eq!(s.noop_count().await.unwrap(), 0);
    s.count_noop().await.unwrap();
    s.count_noop().await.unwrap();
    assert_eq!(s.noop_count().await.unwrap(), 2);
}
