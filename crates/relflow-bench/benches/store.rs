//! The run store at scale: fills 1k / 10k / 100k / 1M runs (3 KB logs,
//! Fedora-like messages, 5 rules) on SQLite and PostgreSQL (a database of
//! its own) and times every store call the web page and the CLI make,
//! printing the median per size and the growth factor per decade.
//!
//! `cargo bench -p relflow-bench --bench store`; `RELFLOW_BENCH_STORE_SIZES`
//! (default `1000,10000,100000,1000000`) picks the sizes. Rows are written
//! in bulk SQL transactions into the tables the store created (its triggers
//! keep the counters, as on every write), then a few runs go through the
//! store's own start/finish so the newest rows took the real path.

use std::time::Instant;

use anyhow::Result;
use relflow_bench::{load_note, report};
use relflow_store::{Cursor, NewRun, PgStore, RunFilter, RunOutcome, RunStatus, RunStore, SqliteStore, TaskCounts};
use serde_json::json;

/// A run log of typical size: a few tasks on two hosts and the recap.
fn log_text() -> String {
    let task = "TASK [sync compose to the mirror] ******************************************\n\
                changed: [mirror01.example.org]\nok: [mirror02.example.org]\n\n";
    let mut log = String::from("PLAY [compose finished] ****************************************************\n\n");
    while log.len() < 3000 {
        log.push_str(task);
    }
    log + "PLAY RECAP *****\nmirror01.example.org : ok=12 changed=3 unreachable=0 failed=0\n"
}

/// Runs `i` in `from..to` as SQL shared by both backends: 5 rules, three
/// topic families, 2% failed, 1% timed out, one run every 30 s ending now.
const ROW_SQL: &str = "
    'msg-' || i,
    CASE i % 3 WHEN 0 THEN 'org.fedoraproject.prod.pungi.compose.status.change'
               WHEN 1 THEN 'org.fedoraproject.prod.buildsys.tag'
               ELSE 'org.fedoraproject.prod.bodhi.update.comment' END,
    'rule-' || (i % 5), 'p.yml', 1,
    CASE WHEN i % 50 = 0 THEN 'failed' WHEN i % 100 = 1 THEN 'timed_out' ELSE 'succeeded' END, 0,
    $now - ($to - i) * 30000, $now - ($to - i) * 30000 + 8000, 12, 'bench:1'";

/// The search terms the store would write for each bulk row: its compose
/// id, and words every run shares (the status, the location's host).
const TERMS_SQLITE: &str = "
    SELECT lower(json_extract(message, '$.compose.id')), id FROM runs WHERE rowid > ?1
    UNION ALL SELECT 'finished', id FROM runs WHERE rowid > ?1
    UNION ALL SELECT 'kojipkgs.example', id FROM runs WHERE rowid > ?1";
const TERMS_POSTGRES: &str = "
    SELECT lower(message->'compose'->>'id'), id FROM batch
    UNION ALL SELECT 'finished', id FROM batch
    UNION ALL SELECT 'kojipkgs.example', id FROM batch";

async fn fill_sqlite(path: &std::path::Path, from: u64, to: u64) -> Result<()> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut c = rusqlite::Connection::open(path)?;
        let now = chrono::Utc::now().timestamp_millis();
        let rows = ROW_SQL.replace("$now", &now.to_string()).replace("$to", &to.to_string());
        for start in (from..to).step_by(20_000) {
            let end = (start + 20_000).min(to);
            let tx = c.transaction()?;
            let before: i64 = tx.query_row("SELECT COALESCE(MAX(rowid), 0) FROM runs", [], |r| r.get(0))?;
            tx.execute(
                &format!(
                    "WITH RECURSIVE n(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {end})
                     INSERT INTO runs (id, message_id, topic, rule, playbook, attempt, status, exit_code,
                                       started_at, finished_at, ok, worker, message)
                     SELECT lower(hex(randomblob(16))), {rows},
                            json_object('compose', json_object('id', 'Fedora-Rawhide-2026' || i || '.n.0'),
                                        'status', 'FINISHED', 'location', 'https://kojipkgs.example/compose/' || i)
                     FROM n"
                ),
                [],
            )?;
            tx.execute(
                "INSERT INTO run_logs SELECT id, ?1 FROM runs WHERE rowid > ?2",
                rusqlite::params![log_text(), before],
            )?;
            tx.execute(&format!("INSERT INTO run_terms {TERMS_SQLITE}"), [before])?;
            tx.commit()?;
        }
        Ok(())
    })
    .await?
}

async fn fill_postgres(url: &str, from: u64, to: u64) -> Result<()> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let now = chrono::Utc::now().timestamp_millis();
    let rows = ROW_SQL.replace("$now", &now.to_string()).replace("$to", &to.to_string());
    for start in (from..to).step_by(20_000) {
        let end = (start + 20_000).min(to) - 1;
        client
            .batch_execute(&format!(
                "BEGIN;
                 CREATE TEMP TABLE batch (id, message_id, topic, rule, playbook, attempt, status, exit_code,
                                          started_at, finished_at, ok, worker, message) ON COMMIT DROP AS
                 SELECT gen_random_uuid()::text AS id, {rows},
                        jsonb_build_object('compose', jsonb_build_object('id', 'Fedora-Rawhide-2026' || i || '.n.0'),
                                           'status', 'FINISHED', 'location', 'https://kojipkgs.example/compose/' || i) AS message
                 FROM generate_series({start}::bigint, {end}::bigint) AS i;
                 INSERT INTO relflow_runs (id, message_id, topic, rule, playbook, attempt, status, exit_code,
                                           started_at, finished_at, ok, worker, message)
                 SELECT * FROM batch;
                 INSERT INTO relflow_run_logs SELECT id, {log} FROM batch;
                 INSERT INTO relflow_run_terms {TERMS_POSTGRES};
                 COMMIT;",
                log = quote(&log_text())
            ))
            .await?;
    }
    client.batch_execute("ANALYZE").await?;
    Ok(())
}

/// A string as a PostgreSQL literal (the log text is ours, not input).
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A few runs through the store's own write path.
async fn real_runs(store: &dyn RunStore, n: u64) -> Result<()> {
    for i in 0..10 {
        let id = format!("bench-{n}-{i}");
        let run = NewRun {
            id: id.clone(),
            message_id: format!("real-{n}-{i}"),
            topic: "org.fedoraproject.prod.buildsys.tag".into(),
            rule: format!("rule-{}", i % 5),
            playbook: "p.yml".into(),
            attempt: 1,
            worker: "bench:1".into(),
            message: json!({"tag": "f41-updates-candidate", "name": "kernel", "version": "6.12.1", "release": "200.fc41"}),
        };
        store.start(&run).await?;
        let outcome = RunOutcome {
            status: RunStatus::Succeeded,
            exit_code: Some(0),
            counts: TaskCounts { ok: 12, changed: 3, ..Default::default() },
            tasks: json!([]),
            log: log_text(),
            error: None,
        };
        store.finish(&id, &outcome).await?;
    }
    Ok(())
}

/// Median milliseconds of `f` over a few calls (after one warm-up).
async fn time<F, Fut, T>(mut f: F) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = relflow_store::Result<T>>,
{
    f().await?;
    let mut samples = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        f().await?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(relflow_bench::percentile(&samples, 50.0))
}

/// Every store call of the page and the CLI, as (name, median ms).
async fn measure(store: &dyn RunStore) -> Result<Vec<(&'static str, f64)>> {
    let page = |f: RunFilter| RunFilter { limit: 50, ..f };
    let rule = || Some("rule-1".to_owned());
    // What GET /api/runs does per request: a page and its total.
    let listing = |f: RunFilter| async move {
        let runs = store.list(&f).await?;
        store.count(&f).await.map(|n| (runs, n))
    };
    let mid = store.list(&RunFilter { limit: 1, offset: relflow_store::MAX_OFFSET, ..Default::default() }).await?;
    let cursor = mid.first().map(Cursor::after);
    let some_id = store.list(&RunFilter { limit: 1, offset: 500, ..Default::default() }).await?;
    let some_id = some_id.first().map(|r| r.id.clone()).unwrap_or_default();
    let prefix = some_id[..8.min(some_id.len())].to_owned();
    let since = chrono::Utc::now() - chrono::Duration::hours(24);
    let failed = Some(RunStatus::Failed);
    let topic = Some("org.fedoraproject.prod.buildsys.tag".to_owned());
    let search = |text: &str| RunFilter { search: Some(text.to_owned()), ..Default::default() };
    Ok(vec![
        ("GET /api/runs (page 1)", time(|| listing(page(RunFilter::default()))).await?),
        ("GET /api/runs?rule=", time(|| listing(page(RunFilter { rule: rule(), ..Default::default() }))).await?),
        (
            "GET /api/runs?status=failed",
            time(|| listing(page(RunFilter { status: failed, ..Default::default() }))).await?,
        ),
        (
            "GET /api/runs?rule=&status=",
            time(|| listing(page(RunFilter { rule: rule(), status: failed, ..Default::default() }))).await?,
        ),
        (
            "GET /api/runs?topic=",
            time(|| listing(page(RunFilter { topic: topic.clone(), ..Default::default() }))).await?,
        ),
        (
            "GET /api/runs?message_id=",
            time(|| listing(page(RunFilter { message_id: Some("msg-77".into()), ..Default::default() }))).await?,
        ),
        ("GET /api/runs?search= (a compose id)", time(|| listing(page(search("Fedora-Rawhide-202677.n.0")))).await?),
        (
            "GET /api/runs?search= (a prefix, 0.1% of runs)",
            time(|| listing(page(search("Fedora-Rawhide-2026777")))).await?,
        ),
        (
            "GET /api/runs?search= (an NVR and a tag)",
            time(|| listing(page(search("kernel-6.12.1-200.fc41 f41-updates")))).await?,
        ),
        (
            "GET /api/runs?topic=*.*.*.buildsys.#",
            time(|| listing(page(RunFilter { topic: Some("*.*.*.buildsys.#".into()), ..Default::default() }))).await?,
        ),
        (
            "GET /api/runs?since=24h",
            time(|| listing(page(RunFilter { since: Some(since), ..Default::default() }))).await?,
        ),
        (
            "GET /api/runs?cursor= (deep)",
            time(|| listing(page(RunFilter { cursor: cursor.clone(), ..Default::default() }))).await?,
        ),
        (
            "GET /api/runs?offset=10000 (max)",
            time(|| listing(page(RunFilter { offset: relflow_store::MAX_OFFSET, ..Default::default() }))).await?,
        ),
        ("GET /api/rules, relflow status", time(|| store.summary()).await?),
        ("GET /api/stats/runs-per-hour", time(|| store.runs_per_hour(since)).await?),
        ("GET /api/runs/{id}, runs show", time(|| store.get(&some_id)).await?),
        ("runs show PREFIX (8 chars)", time(|| store.get(&prefix)).await?),
        ("worker: has_succeeded", time(|| store.has_succeeded("msg-77", "rule-2")).await?),
    ])
}

fn sizes() -> Vec<u64> {
    let sizes = std::env::var("RELFLOW_BENCH_STORE_SIZES").unwrap_or_else(|_| "1000,10000,100000,1000000".into());
    sizes.split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

/// One backend over every size: a column of medians per size.
async fn bench(
    store: &dyn RunStore,
    mut fill: impl AsyncFnMut(u64, u64) -> Result<()>,
) -> Result<Vec<(u64, Vec<(&'static str, f64)>)>> {
    let mut columns = Vec::new();
    let mut have = 0;
    for n in sizes() {
        let t = Instant::now();
        fill(have, n - 10).await?;
        real_runs(store, n).await?;
        have = n;
        eprintln!("filled {n} runs in {:.0} s", t.elapsed().as_secs_f64());
        columns.push((n, measure(store).await?));
    }
    Ok(columns)
}

fn table(backend: &str, columns: &[(u64, Vec<(&'static str, f64)>)]) -> Vec<String> {
    let mut lines = vec![format!("\n{backend}: median ms per call (x = growth per decade)\n")];
    let head: Vec<String> = columns.iter().map(|(n, _)| format!("{n} runs")).collect();
    lines.push(format!("| call | {} |", head.join(" | ")));
    lines.push(format!("|---|{}", "---|".repeat(columns.len())));
    for (row, (name, _)) in columns[0].1.iter().enumerate() {
        let mut cells = Vec::new();
        for (i, (_, col)) in columns.iter().enumerate() {
            let ms = col[row].1;
            match i.checked_sub(1).map(|p| columns[p].1[row].1) {
                Some(prev) => cells.push(format!("{ms:.2} ({:.1}x)", ms / prev)),
                None => cells.push(format!("{ms:.2}")),
            }
        }
        lines.push(format!("| {name} | {} |", cells.join(" | ")));
    }
    lines
}

/// `relflow status`'s queue depth at a 500k-message embedded backlog
/// (filled in bulk into the file the queue created), median ms.
async fn queue_depth_at_backlog(n: u64) -> Result<f64> {
    use relflow_queue::{SqliteQueue, SqliteQueueOptions, WorkQueue};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.sqlite3");
    let q = SqliteQueue::open(&path, SqliteQueueOptions::default())?;
    let c = rusqlite::Connection::open(&path)?;
    c.execute(
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {n})
             INSERT INTO queue (payload, not_before) SELECT randomblob(1500), 0 FROM n"
        ),
        [],
    )?;
    let ms = time(|| async { q.depth().await.map_err(|e| relflow_store::StoreError::Backend(e.to_string())) }).await?;
    Ok(ms)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut lines = vec![format!("run store at scale ({})", load_note())];
    let depth = queue_depth_at_backlog(500_000).await?;
    lines.push(format!("\nrelflow status queue depth at a 500000-message embedded backlog: {depth:.2} ms (median)"));
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("runs.sqlite3");
    let sqlite = SqliteStore::open(&path)?;
    let columns = bench(&sqlite, async |from, to| fill_sqlite(&path, from, to).await).await?;
    lines.extend(table("SQLite", &columns));
    drop(dir);

    let db = relflow_testkit::PgDatabase::new();
    let pg = PgStore::connect(&db.url()).await?;
    let url = db.url();
    let columns = bench(&pg, async |from, to| fill_postgres(&url, from, to).await).await?;
    lines.extend(table("PostgreSQL", &columns));
    for l in &lines {
        println!("{l}");
    }
    report("store", &lines)
}
