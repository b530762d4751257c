//! The run store contract, checked on both backends: a real SQLite file and
//! a real PostgreSQL database (127.0.0.1:5432, a fresh database per test).

use std::time::Duration;

use relflow_store::{
    Cursor, NewEvent, NewRun, PgStore, RunFilter, RunOutcome, RunStatus, RunStore, SqliteStore, StoreError, TaskCounts,
    MAX_OFFSET,
};
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

/// Keeps a backend's resources alive for one test and cleans them up after.
enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Db(#[allow(dead_code)] relflow_testkit::PgDatabase),
}

async fn sqlite() -> (Guard, Box<dyn RunStore>) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path().join("runs.sqlite3")).unwrap();
    (Guard::Dir(dir), Box::new(s))
}

async fn postgres() -> (Guard, Box<dyn RunStore>) {
    let db = relflow_testkit::PgDatabase::new();
    let s = PgStore::connect(&db.url()).await.unwrap();
    (Guard::Db(db), Box::new(s))
}

/// Each contract test, once per backend.
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (_g, s) = super::sqlite().await;
                super::$body(s.as_ref()).await;
            }
            #[tokio::test]
            async fn postgres() {
                let (_g, s) = super::postgres().await;
                super::$body(s.as_ref()).await;
            }
        }
    };
}

both!(recorded_from_start_to_finish, a_run_is_recorded_from_start_to_finish);
both!(only_success_counts, only_a_success_counts_as_done_for_a_message_and_rule);
both!(redelivery_abandons, a_redelivered_run_abandons_the_dead_workers_run);
both!(list_filters_pages, list_filters_and_pages_newest_first);
both!(prefix_get, get_by_unique_prefix);
both!(cursor_pages, cursor_pages_through_every_run_once);
both!(counters, counters_follow_every_status_change);
both!(noop, noop_counter);
both!(group_locks, locks_exclude_other_holders_and_release_on_drop);
both!(count_and_hourly, count_ignores_paging_and_hours_group_by_status);
both!(outbox_with_the_run, events_are_written_with_the_run_change_or_not_at_all);
both!(outbox_claims, events_are_claimed_in_order_by_one_drainer_and_sent_once);
both!(outbox_backoff, a_failed_publish_holds_the_destination_until_its_retry_time);
both!(outbox_lease, an_expired_claim_is_claimed_again);
both!(outbox_bounded, the_outbox_is_bounded_and_its_backlog_visible);
both!(audit_in_order, the_audit_log_keeps_every_entry_in_write_order);

async fn a_run_is_recorded_from_start_to_finish(s: &dyn RunStore) {
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

async fn only_a_success_counts_as_done_for_a_message_and_rule(s: &dyn RunStore) {
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

async fn a_redelivered_run_abandons_the_dead_workers_run(s: &dyn RunStore) {
    s.start(&new_run("dead", "m1", "r")).await.unwrap();
    s.start(&new_run("alive", "m1", "r")).await.unwrap();
    let dead = s.get("dead").await.unwrap().unwrap();
    assert_eq!(dead.record.status, RunStatus::Abandoned);
    assert!(dead.record.error.unwrap().contains("redelivered"));
    assert_eq!(s.get("alive").await.unwrap().unwrap().record.status, RunStatus::Running);
}

async fn list_filters_and_pages_newest_first(s: &dyn RunStore) {
    for i in 0..5 {
        s.start(&new_run(&format!("run-{i}"), &format!("m{i}"), if i % 2 == 0 { "even" } else { "odd" }))
            .await
            .unwrap();
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

async fn get_by_unique_prefix(s: &dyn RunStore) {
    s.start(&new_run("abc123", "m1", "r")).await.unwrap();
    s.start(&new_run("abd456", "m2", "r")).await.unwrap();
    assert_eq!(s.get("abc").await.unwrap().unwrap().record.id, "abc123");
    assert!(matches!(s.get("ab").await, Err(StoreError::Ambiguous(_))));
    assert!(s.get("zzz").await.unwrap().is_none());
    // LIKE wildcards in the input are plain characters (issue 16).
    assert!(s.get("a%").await.unwrap().is_none(), "`a%` is not the prefix `a`");
    s.start(&new_run("a_1", "m3", "r")).await.unwrap();
    s.start(&new_run("a%2", "m4", "r")).await.unwrap();
    assert_eq!(s.get("a_").await.unwrap().unwrap().record.id, "a_1", "`_` is not any character");
    assert_eq!(s.get("a%").await.unwrap().unwrap().record.id, "a%2");
    // An exact id wins over longer ids it prefixes.
    s.start(&new_run("abc", "m5", "r")).await.unwrap();
    assert_eq!(s.get("abc").await.unwrap().unwrap().record.id, "abc");
}

async fn cursor_pages_through_every_run_once(s: &dyn RunStore) {
    // Runs started in the same millisecond still page apart (the id breaks ties).
    for i in 0..7 {
        s.start(&new_run(&format!("run-{i}"), &format!("m{i}"), "r")).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut filter = RunFilter { limit: 3, rule: Some("r".into()), ..Default::default() };
    loop {
        let page = s.list(&filter).await.unwrap();
        seen.extend(page.iter().map(|r| r.id.clone()));
        match page.last() {
            Some(last) if page.len() == 3 => filter.cursor = Some(Cursor::after(last)),
            _ => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((seen.len(), sorted.len()), (7, 7), "{seen:?}");
    let all = s.list(&RunFilter::default()).await.unwrap();
    assert_eq!(seen, all.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), "same order as one big page");
    let cursor = Cursor::parse(&Cursor::after(&all[2]).to_string()).unwrap();
    assert_eq!(cursor, Cursor::after(&all[2]), "a cursor survives its text form");
    let deep = RunFilter { offset: MAX_OFFSET + 1, ..Default::default() };
    assert!(matches!(s.list(&deep).await, Err(StoreError::OffsetTooDeep(_))));
}

async fn counters_follow_every_status_change(s: &dyn RunStore) {
    s.start(&new_run("1", "m1", "a")).await.unwrap();
    s.start(&new_run("2", "m2", "a")).await.unwrap();
    s.start(&new_run("3", "m3", "b")).await.unwrap();
    s.finish("1", &outcome(RunStatus::Succeeded)).await.unwrap();
    s.finish("3", &outcome(RunStatus::Failed)).await.unwrap();
    // A redelivery abandons run 2 and starts run 4.
    s.start(&new_run("4", "m2", "a")).await.unwrap();
    let summary: Vec<_> =
        s.summary().await.unwrap().into_iter().map(|c| (c.rule, c.status.as_str(), c.count)).collect();
    assert_eq!(
        summary,
        [
            ("a".into(), "abandoned", 1),
            ("a".into(), "running", 1),
            ("a".into(), "succeeded", 1),
            ("b".into(), "failed", 1)
        ]
    );
    let rule_a = RunFilter { rule: Some("a".into()), ..Default::default() };
    assert_eq!(s.count(&rule_a).await.unwrap(), 3);
    let by_topic = RunFilter { topic: Some(new_run("x", "y", "z").topic), ..Default::default() };
    assert_eq!(s.count(&by_topic).await.unwrap(), 4, "counted rows agree with the counters");
}

async fn noop_counter(s: &dyn RunStore) {
    assert_eq!(s.noop_count().await.unwrap(), 0);
    s.count_noop().await.unwrap();
    s.count_noop().await.unwrap();
    assert_eq!(s.noop_count().await.unwrap(), 2);
    // The worker's batched flush: n at once.
    s.count_noops(40).await.unwrap();
    s.count_noops(0).await.unwrap();
    assert_eq!(s.noop_count().await.unwrap(), 42);
}

async fn count_ignores_paging_and_hours_group_by_status(s: &dyn RunStore) {
    let before = chrono::Utc::now() - chrono::Duration::hours(1);
    for (i, status) in [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Succeeded].into_iter().enumerate() {
        s.start(&new_run(&format!("run-{i}"), &format!("m{i}"), "r")).await.unwrap();
        s.finish(&format!("run-{i}"), &outcome(status)).await.unwrap();
    }
    s.start(&new_run("still-running", "m9", "other")).await.unwrap();
    assert_eq!(
        s.count(&RunFilter { limit: 1, offset: 1, ..Default::default() }).await.unwrap(),
        4,
        "limit/offset ignored"
    );
    assert_eq!(s.count(&RunFilter { rule: Some("r".into()), ..Default::default() }).await.unwrap(), 3);
    assert_eq!(s.count(&RunFilter { status: Some(RunStatus::Failed), ..Default::default() }).await.unwrap(), 1);

    let hours = s.runs_per_hour(before).await.unwrap();
    let total = |st: RunStatus| hours.iter().filter(|h| h.status == st).map(|h| h.count).sum::<u64>();
    assert_eq!(
        (total(RunStatus::Succeeded), total(RunStatus::Failed), total(RunStatus::Running)),
        (2, 1, 1),
        "{hours:?}"
    );
    assert!(
        hours.iter().all(|h| h.hour.timestamp() % 3600 == 0 && h.hour >= before - chrono::Duration::hours(1)),
        "{hours:?}"
    );
    assert!(s.runs_per_hour(chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap().is_empty());
}

async fn locks_exclude_other_holders_and_release_on_drop(s: &dyn RunStore) {
    let compose = s.lock("compose").await.unwrap();
    // Another name is independent.
    let _other =
        tokio::time::timeout(std::time::Duration::from_secs(10), s.lock("release=f41")).await.expect("not blocked");
    // The same name waits until the holder lets go (each lock call is its
    // own flock / PostgreSQL session, exactly as in two worker processes).
    let waiter = s.lock("compose");
    tokio::pin!(waiter);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), &mut waiter).await.is_err(),
        "a second holder must wait"
    );
    drop(compose);
    tokio::time::timeout(std::time::Duration::from_secs(10), waiter).await.expect("released on drop").unwrap();
}

fn event(id: &str, destinations: &[&str]) -> NewEvent {
    NewEvent {
        id: id.into(),
        topic: format!("relflow.run.{id}"),
        body: json!({"event_id": id, "big": 12345678901234567890u64}),
        headers: json!({"x-relflow-chain-depth": 1}).as_object().unwrap().clone(),
        destinations: destinations.iter().map(|d| d.to_string()).collect(),
    }
}

const LEASE: Duration = Duration::from_secs(60);

fn ids(events: &[relflow_store::PendingEvent]) -> Vec<&str> {
    events.iter().map(|e| e.id.as_str()).collect()
}

async fn events_are_written_with_the_run_change_or_not_at_all(s: &dyn RunStore) {
    s.start_announced(&new_run("r1", "m1", "r"), &[event("started", &["amqp", "queue"])]).await.unwrap();
    s.finish_announced("r1", &outcome(RunStatus::Succeeded), &[event("succeeded", &["amqp"])]).await.unwrap();
    let amqp = s.claim_events("amqp", "me", 10, LEASE).await.unwrap();
    assert_eq!(ids(&amqp), ["started", "succeeded"]);
    assert_eq!(amqp[0].body["big"], json!(12345678901234567890u64), "the body comes back value for value");
    assert_eq!(amqp[0].headers["x-relflow-chain-depth"], 1);
    assert_eq!(amqp[0].topic, "relflow.run.started");
    assert_eq!(ids(&s.claim_events("queue", "me", 10, LEASE).await.unwrap()), ["started"]);
    // A start that fails (the run id exists) writes no event either.
    let again = s.start_announced(&new_run("r1", "m1", "r"), &[event("ghost", &["other"])]).await;
    assert!(again.is_err(), "a second run with the same id is refused");
    assert!(s.claim_events("other", "me", 10, LEASE).await.unwrap().is_empty(), "rolled back with the run");
}

async fn events_are_claimed_in_order_by_one_drainer_and_sent_once(s: &dyn RunStore) {
    let events: Vec<NewEvent> = (0..5).map(|i| event(&format!("e{i}"), &["amqp"])).collect();
    s.announce(&events).await.unwrap();
    // The same ids again (a worker that crashed and wrote them again): no copies.
    s.announce(&events[..2]).await.unwrap();
    let first = s.claim_events("amqp", "a", 3, LEASE).await.unwrap();
    assert_eq!(ids(&first), ["e0", "e1", "e2"]);
    assert!(s.claim_events("amqp", "b", 3, LEASE).await.unwrap().is_empty(), "a live claim holds the destination");
    s.events_sent("amqp", &["e0".into(), "e1".into(), "e2".into()]).await.unwrap();
    let rest = s.claim_events("amqp", "b", 10, LEASE).await.unwrap();
    assert_eq!(ids(&rest), ["e3", "e4"], "oldest first, nothing sent twice");
    s.events_sent("amqp", &["e3".into(), "e4".into()]).await.unwrap();
    assert!(s.claim_events("amqp", "a", 10, LEASE).await.unwrap().is_empty());
    assert!(s.outbox_backlog().await.unwrap().is_empty());
}

async fn a_failed_publish_holds_the_destination_until_its_retry_time(s: &dyn RunStore) {
    s.announce(&[event("e0", &["amqp", "fedmsg"]), event("e1", &["amqp"])]).await.unwrap();
    let claimed = s.claim_events("amqp", "a", 10, LEASE).await.unwrap();
    let all: Vec<String> = claimed.iter().map(|e| e.id.clone()).collect();
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    s.release_events("amqp", "a", &all, "broker down", soon).await.unwrap();
    assert!(s.claim_events("amqp", "b", 10, LEASE).await.unwrap().is_empty(), "backing off");
    assert_eq!(ids(&s.claim_events("fedmsg", "b", 10, LEASE).await.unwrap()), ["e0"], "other destinations go on");
    let backlog = s.outbox_backlog().await.unwrap();
    let amqp = backlog.iter().find(|b| b.destination == "amqp").unwrap();
    assert_eq!((amqp.pending, amqp.last_error.as_deref()), (2, Some("broker down")));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let retried = s.claim_events("amqp", "b", 10, LEASE).await.unwrap();
    assert_eq!(ids(&retried), ["e0", "e1"], "in order again after the retry time");
    assert_eq!(retried[0].attempts, 1);
    // Only the claimant can release: a stale drainer cannot undo a newer claim.
    s.release_events("amqp", "a", &all, "stale", chrono::Utc::now()).await.unwrap();
    assert!(s.claim_events("amqp", "c", 10, LEASE).await.unwrap().is_empty());
}

async fn an_expired_claim_is_claimed_again(s: &dyn RunStore) {
    s.announce(&[event("e0", &["amqp"])]).await.unwrap();
    // A drainer that died holding its claim.
    assert_eq!(s.claim_events("amqp", "dead", 10, Duration::ZERO).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(ids(&s.claim_events("amqp", "alive", 10, LEASE).await.unwrap()), ["e0"]);
}

async fn the_outbox_is_bounded_and_its_backlog_visible(s: &dyn RunStore) {
    let events: Vec<NewEvent> = (0..5).map(|i| event(&format!("e{i}"), &["amqp", "queue"])).collect();
    s.announce(&events).await.unwrap();
    let claimed = s.claim_events("queue", "a", 2, LEASE).await.unwrap();
    s.events_sent("queue", &claimed.iter().map(|e| e.id.clone()).collect::<Vec<_>>()).await.unwrap();
    let backlog = s.outbox_backlog().await.unwrap();
    let pending: Vec<(&str, u64)> = backlog.iter().map(|b| (b.destination.as_str(), b.pending)).collect();
    assert_eq!(pending, [("amqp", 5), ("queue", 3)]);
    assert!(backlog[0].oldest.unwrap() <= chrono::Utc::now());
    // Keep 2 unsent per destination: the oldest go.
    let dropped = s.prune_outbox(2, chrono::Utc::now() - chrono::Duration::hours(1)).await.unwrap();
    assert_eq!(dropped, 3 + 1);
    assert_eq!(ids(&s.claim_events("amqp", "a", 10, LEASE).await.unwrap()), ["e3", "e4"]);
    // Sent rows stay until their time is up, so a late copy of an id stays a no-op.
    s.announce(&events[..1]).await.unwrap();
    assert!(s.claim_events("queue", "b", 10, LEASE).await.unwrap().iter().all(|e| e.id != "e0"));
}

async fn the_audit_log_keeps_every_entry_in_write_order(s: &dyn RunStore) {
    use relflow_store::NewAudit;
    let entry = |who: &str, action: &str, outcome: &str| NewAudit {
        who: who.into(),
        role: "operator".into(),
        action: action.into(),
        target: "12".into(),
        peer: "127.0.0.1:5000".into(),
        outcome: outcome.into(),
    };
    assert!(s.audit_log(None, 0).await.unwrap().is_empty());
    s.audit(&entry("viewer", "replay", "denied")).await.unwrap();
    s.audit(&entry("ops", "replay", "ok")).await.unwrap();
    s.audit(&entry("ops", "purge", "denied")).await.unwrap();
    let all = s.audit_log(None, 0).await.unwrap();
    let seen: Vec<_> = all.iter().map(|e| (e.who.as_str(), e.action.as_str(), e.outcome.as_str())).collect();
    assert_eq!(seen, [("viewer", "replay", "denied"), ("ops", "replay", "ok"), ("ops", "purge", "denied")]);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq && w[0].at <= w[1].at));
    assert_eq!(all[0].peer, "127.0.0.1:5000");
    let newest: Vec<_> = s.audit_log(None, 2).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(newest, [all[1].seq, all[2].seq], "a limit keeps the newest, still oldest first");
    let later = all[2].at + chrono::Duration::milliseconds(1);
    assert!(s.audit_log(Some(later), 0).await.unwrap().is_empty(), "since");
    assert_eq!(s.audit_log(Some(all[0].at), 0).await.unwrap().len(), 3);
}

/// Stateful-rule batches (coalesce, join).
#[path = "store_contract/find.rs"]
mod find;
/// Worker heartbeats.
#[path = "store_contract/fleet.rs"]
mod fleet;
#[path = "store_contract/state.rs"]
mod state;
#[path = "store_contract/timers.rs"]
mod timers;

/// Approval gates and retention.
#[path = "store_contract/gates.rs"]
mod gates;
