//! The run store at scale: every listing the page and CLI make is served by
//! an index (checked in the query plans of both backends), and a database
//! made by the schema before the counters and log table upgrades in place.

use relflow_store::{Cursor, NewRun, PgStore, RunFilter, RunOutcome, RunStatus, RunStore, SqliteStore, TaskCounts};
use serde_json::json;

/// Every filter combination the API and CLI can send, with and without a
/// cursor.
fn listings() -> Vec<RunFilter> {
    let since = Some(chrono::Utc::now() - chrono::Duration::hours(2));
    let cursor = Some(Cursor { started_at: 1_700_000_000_000, id: "abc".into() });
    let base = [
        RunFilter::default(),
        RunFilter { rule: Some("r".into()), ..Default::default() },
        RunFilter { status: Some(RunStatus::Failed), ..Default::default() },
        RunFilter { rule: Some("r".into()), status: Some(RunStatus::Failed), ..Default::default() },
        RunFilter { topic: Some("t".into()), ..Default::default() },
        RunFilter { message_id: Some("m".into()), ..Default::default() },
        RunFilter { since, ..Default::default() },
        RunFilter { rule: Some("r".into()), since, ..Default::default() },
        RunFilter { topic: Some("t".into()), status: Some(RunStatus::Succeeded), ..Default::default() },
        RunFilter { search: Some("Fedora-Rawhide-20261124.n.0".into()), ..Default::default() },
        RunFilter { search: Some("kernel f41".into()), rule: Some("r".into()), ..Default::default() },
        RunFilter { topic: Some("org.fedoraproject.*.buildsys.tag".into()), ..Default::default() },
    ];
    base.into_iter()
        .flat_map(|f| [RunFilter { limit: 50, ..f.clone() }, RunFilter { limit: 50, cursor: cursor.clone(), ..f }])
        .collect()
}

#[tokio::test]
async fn sqlite_listings_seek_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("runs.sqlite3")).unwrap();
    for f in listings() {
        let plan = store.explain(&f).await.unwrap();
        for line in &plan {
            // `SCAN runs` alone reads the whole table; `SCAN runs USING
            // INDEX` walks an index in order and stops at the limit, which
            // only the unfiltered listing may do.
            let filtered = f.rule.is_some()
                || f.status.is_some()
                || f.topic.is_some()
                || f.message_id.is_some()
                || f.search.is_some();
            assert!(!line.ends_with("SCAN runs"), "full scan for {f:?}: {plan:#?}");
            if filtered {
                assert!(!line.contains("SCAN runs"), "index walk instead of a seek for {f:?}: {plan:#?}");
            }
        }
        assert!(plan.iter().any(|l| l.contains("USING")), "{plan:#?}");
    }
}

#[tokio::test]
async fn the_workers_has_succeeded_seeks_the_messages_own_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("runs.sqlite3")).unwrap();
    let plan = store.explain_has_succeeded().await.unwrap();
    assert_eq!(
        plan,
        ["SEARCH runs USING COVERING INDEX runs_message_rule_status (message_id=? AND rule=? AND status=?)"]
    );
}

#[tokio::test]
async fn postgres_listings_seek_an_index() {
    let db = relflow_testkit::PgDatabase::new();
    let store = PgStore::connect(&db.url()).await.unwrap();
    for f in listings() {
        let plan = store.explain(&f).await.unwrap();
        // With sequential scans switched off, a plan that still has one has
        // no index to use.
        assert!(!plan.iter().any(|l| l.contains("Seq Scan")), "full scan for {f:?}: {plan:#?}");
        assert!(plan.iter().any(|l| l.contains("Index")), "{plan:#?}");
    }
}

/// The runs table as relflow created it before this upgrade.
const OLD_SQLITE: &str = "
CREATE TABLE runs (
    id TEXT PRIMARY KEY, message_id TEXT NOT NULL, topic TEXT NOT NULL, rule TEXT NOT NULL,
    playbook TEXT NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL, exit_code INTEGER,
    started_at INTEGER NOT NULL, finished_at INTEGER,
    ok INTEGER NOT NULL DEFAULT 0, changed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0, unreachable INTEGER NOT NULL DEFAULT 0,
    error TEXT, worker TEXT NOT NULL, message TEXT NOT NULL,
    tasks TEXT NOT NULL DEFAULT '[]', log TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_message_rule ON runs (message_id, rule);
CREATE INDEX runs_started ON runs (started_at);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO runs (id, message_id, topic, rule, playbook, attempt, status, started_at, worker, message, log) VALUES
    ('old-1', 'm1', 't', 'a', 'p.yml', 1, 'succeeded', 1700000000000, 'h:1',
     '{\"body\": {\"compose_id\": \"Fedora-Rawhide-20261124.n.0\"}}', 'PLAY RECAP old-1'),
    ('old-2', 'm2', 't', 'a', 'p.yml', 1, 'failed', 1700000001000, 'h:1', '{}', 'PLAY RECAP old-2'),
    ('old-3', 'm3', 't', 'b', 'p.yml', 1, 'running', 1700003600000, 'h:1', '{}', '');
";

/// What the upgraded store must say about the three old runs, and that it
/// keeps counting new ones.
async fn upgraded_store_has_the_old_runs(s: &dyn RunStore) {
    assert_eq!(s.get("old-1").await.unwrap().unwrap().log, "PLAY RECAP old-1", "logs move, not vanish");
    let search = RunFilter { search: Some("fedora-rawhide-20261124".into()), ..Default::default() };
    let found: Vec<String> = s.list(&search).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(found, ["old-1"], "earlier runs are indexed for search");
    assert_eq!(s.get("old-2").await.unwrap().unwrap().record.subject, "t", "and have a subject");
    let summary: Vec<_> =
        s.summary().await.unwrap().into_iter().map(|c| (c.rule, c.status.as_str(), c.count)).collect();
    assert_eq!(summary, [("a".into(), "failed", 1), ("a".into(), "succeeded", 1), ("b".into(), "running", 1)]);
    let hours = s.runs_per_hour(chrono::DateTime::from_timestamp(1_699_990_000, 0).unwrap()).await.unwrap();
    assert_eq!(hours.iter().map(|h| h.count).sum::<u64>(), 3, "{hours:?}");
    assert_eq!(hours.len(), 3, "two hours, three statuses: {hours:?}");

    s.finish("old-3", &outcome()).await.unwrap();
    let run = NewRun {
        id: "new-1".into(),
        message_id: "m4".into(),
        topic: "t".into(),
        rule: "b".into(),
        playbook: "p.yml".into(),
        attempt: 1,
        worker: "h:2".into(),
        message: json!({}),
    };
    s.start(&run).await.unwrap();
    let b = RunFilter { rule: Some("b".into()), ..Default::default() };
    assert_eq!(s.count(&b).await.unwrap(), 2);
    let running = RunFilter { status: Some(RunStatus::Running), ..Default::default() };
    assert_eq!(s.count(&running).await.unwrap(), 1);
    assert_eq!(s.get("old-3").await.unwrap().unwrap().log, "PLAY RECAP new");
}

fn outcome() -> RunOutcome {
    RunOutcome {
        status: RunStatus::Succeeded,
        exit_code: Some(0),
        counts: TaskCounts::default(),
        tasks: json!([]),
        log: "PLAY RECAP new".into(),
        error: None,
    }
}

#[tokio::test]
async fn an_old_sqlite_store_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.sqlite3");
    rusqlite::Connection::open(&path).unwrap().execute_batch(OLD_SQLITE).unwrap();
    upgraded_store_has_the_old_runs(&SqliteStore::open(&path).unwrap()).await;
    // Opening again changes nothing (the upgrade runs once).
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.count(&RunFilter { rule: Some("b".into()), ..Default::default() }).await.unwrap(), 2);
}

#[tokio::test]
async fn an_old_postgres_store_upgrades_in_place() {
    let db = relflow_testkit::PgDatabase::new();
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let old = OLD_SQLITE
        .replace("CREATE TABLE runs", "CREATE TABLE relflow_runs")
        .replace("INSERT INTO runs", "INSERT INTO relflow_runs")
        .replace("ON runs", "ON relflow_runs")
        .replace("INDEX runs_", "INDEX relflow_runs_")
        .replace("TABLE counters", "TABLE relflow_counters")
        .replace("started_at INTEGER", "started_at BIGINT")
        .replace("finished_at INTEGER", "finished_at BIGINT")
        .replace("message TEXT NOT NULL", "message JSONB NOT NULL")
        .replace("tasks TEXT NOT NULL DEFAULT '[]'", "tasks JSONB NOT NULL DEFAULT '[]'");
    client.batch_execute(&old).await.unwrap();
    drop(client);
    upgraded_store_has_the_old_runs(&PgStore::connect(&db.url()).await.unwrap()).await;
    let again = PgStore::connect(&db.url()).await.unwrap();
    assert_eq!(again.count(&RunFilter { rule: Some("b".into()), ..Default::default() }).await.unwrap(), 2);
}
