//! The default run store: tables in the same SQLite file as the embedded queue.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value as Sql;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Row};

use relflow_queue::file::{open_connection, Guard, WalBound};

use crate::page::{matching, prefix_range, sum, topics_sql};
use crate::{
    lock_key, stored_subject, time, FilterValue, HourlyCount, LockGuard, NewEvent, NewRun, Result, RuleCount,
    RunDetail, RunFilter, RunOutcome, RunRecord, RunStatus, RunStore, StoreError, TaskCounts, COUNT_CAP,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    message_id  TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    playbook    TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    exit_code   INTEGER,
    started_at  INTEGER NOT NULL,   -- unix ms
    finished_at INTEGER,
    ok INTEGER NOT NULL DEFAULT 0, changed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0, unreachable INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    worker      TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    tasks       TEXT    NOT NULL DEFAULT '[]',
    log         TEXT    NOT NULL DEFAULT ''
);
-- The worker asks has_succeeded for every message: with status in the index
-- the planner seeks the message's own runs, not every succeeded run of the
-- rule (runs_rule_status_started), which grew linearly with the store.
CREATE INDEX IF NOT EXISTS runs_message_rule_status ON runs (message_id, rule, status);
DROP INDEX IF EXISTS runs_message_rule;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// [`RunStore::has_succeeded`]'s query (see [`SqliteStore::explain_has_succeeded`]).
const HAS_SUCCEEDED: &str = "SELECT 1 FROM runs WHERE message_id = ?1 AND rule = ?2 AND status = 'succeeded' LIMIT 1";

const RECORD_COLUMNS: &str = "id, message_id, topic, rule, playbook, attempt, status, exit_code, started_at, \
     finished_at, ok, changed, failed, skipped, unreachable, error, worker, subject";

/// How many lock files [`RunStore::lock_run`] spreads runs over.
const RUN_LOCK_STRIPES: u8 = 64;

/// The SQLite [`RunStore`]. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    /// The one writer; the worker's reads that decide what to run
    /// (`has_succeeded`) use it too, so they see its own writes.
    conn: Arc<Mutex<Connection>>,
    /// Whether the files can still be written, asked before every use of
    /// either connection kind (relflow_queue::file: else a SIGBUS).
    guard: Guard,
    wal: Arc<Mutex<WalBound>>,
    readers: Readers,
    /// Lock files for concurrency groups: `<db dir>/locks/<sha256>.lock`.
    lock_dir: std::path::PathBuf,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn record(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    let status: String = r.get(6)?;
    let topic: String = r.get(2)?;
    Ok(RunRecord {
        subject: stored_subject(r.get(17)?, &topic),
        id: r.get(0)?,
        message_id: r.get(1)?,
        topic,
        rule: r.get(3)?,
        playbook: r.get(4)?,
        attempt: r.get(5)?,
        // A status written by a newer relflow reads as an error, not a crash.
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Error),
        exit_code: r.get(7)?,
        started_at: time(r.get(8)?),
        finished_at: r.get::<_, Option<i64>>(9)?.map(time),
        counts: TaskCounts {
            ok: r.get(10)?,
            changed: r.get(11)?,
            failed: r.get(12)?,
            skipped: r.get(13)?,
            unreachable: r.get(14)?,
        },
        error: r.get(15)?,
        worker: r.get(16)?,
    })
}

/// The `WHERE` clause (never empty) and its arguments for a filter;
/// `topics` as [`RunFilter::conditions`] takes them.
fn where_clause(f: &RunFilter, topics: Option<Vec<String>>) -> (String, Vec<Sql>) {
    let mut sql = String::from("1=1");
    let mut args = Vec::new();
    for (clause, v) in f.conditions(topics) {
        match v {
            FilterValue::AnyOf(values) => {
                args.push(Sql::Text(serde_json::Value::from(values).to_string()));
                sql.push_str(&format!(" AND {clause} IN (SELECT value FROM json_each(?{}))", args.len()));
                continue;
            }
            FilterValue::Term(from, to) => {
                args.extend([Sql::Text(from), Sql::Text(to)]);
                let (a, b) = (args.len() - 1, args.len());
                sql.push_str(&format!(
                    " AND {clause} IN (SELECT run_id FROM run_terms WHERE term >= ?{a} AND term < ?{b})"
                ));
                continue;
            }
            FilterValue::Text(t) => args.push(Sql::Text(t)),
            FilterValue::Millis(ms) => args.push(Sql::Integer(ms)),
            FilterValue::After(ms, id) => {
                args.extend([Sql::Integer(ms), Sql::Text(id)]);
                sql.push_str(&format!(" AND {clause} (?{}, ?{})", args.len() - 1, args.len()));
                continue;
            }
        }
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    }
    (sql, args)
}

/// A page of runs: an index walk in `(started_at, id)` order that stops at
/// the limit.
fn list_sql(f: &RunFilter, topics: Option<Vec<String>>) -> Result<(String, Vec<Sql>)> {
    let (clause, args) = where_clause(f, topics);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM runs WHERE {clause} ORDER BY started_at DESC, id DESC LIMIT {} OFFSET {}",
        f.sql_limit(),
        f.checked_offset()?
    );
    Ok((sql, args))
}

/// Counts rows for filters the counters do not cover, stopping past the cap.
fn count_sql(f: &RunFilter, topics: Option<Vec<String>>) -> (String, Vec<Sql>) {
    let (clause, args) = where_clause(&RunFilter { cursor: None, ..f.clone() }, topics);
    (format!("SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE {clause} LIMIT {})", COUNT_CAP + 1), args)
}

/// The stored topics a topic-pattern filter matches (`None`: not a pattern).
fn resolve_topics(c: &Connection, f: &RunFilter) -> Result<Option<Vec<String>>> {
    let Some(pattern) = f.topic_pattern()? else { return Ok(None) };
    let mut stmt = c.prepare_cached(&topics_sql("runs"))?;
    let topics = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(Some(matching(&pattern, topics)))
}

/// Indexes run `id` for search under `terms`, in the caller's transaction
/// (the one that records the run, or the upgrade's).
pub(crate) fn insert_terms(c: &Connection, id: &str, terms: &[String]) -> rusqlite::Result<()> {
    let terms = serde_json::Value::from(terms).to_string();
    c.prepare_cached("INSERT INTO run_terms (term, run_id) SELECT value, ?1 FROM json_each(?2)")?
        .execute(params![id, terms])?;
    Ok(())
}

/// Read-only connections for the API and CLI listings. In WAL mode readers
/// and the writer never wait for each other, so the worker's writes do not
/// queue behind a page load. Opened as needed, a few kept for reuse.
#[derive(Clone)]
struct Readers {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

/// Idle read connections kept open.
const IDLE_READERS: usize = 4;

impl Readers {
    fn take(&self) -> Result<Connection> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let open_err = |source| StoreError::Open { path: self.path.display().to_string(), source };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(open_err)?;
        Ok(conn)
    }

    fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

impl SqliteStore {
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref();
        let open_err = |source| StoreError::Open { path: path.display().to_string(), source };
        let mut conn = open_connection(path).map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        crate::schema::upgrade_sqlite(&mut conn).map_err(open_err)?;
        conn.execute_batch(crate::outbox::sqlite::SCHEMA).map_err(open_err)?;
        conn.execute_batch(crate::state::SCHEMA).map_err(open_err)?;
        conn.execute_batch(crate::timers::SCHEMA).map_err(open_err)?;
        conn.execute_batch(crate::fleet::SCHEMA).map_err(open_err)?;
        conn.execute_batch(crate::control::sqlite::SCHEMA).map_err(open_err)?;
        conn.execute_batch(&crate::approval::schema("INTEGER")).map_err(open_err)?;
        conn.execute_batch(crate::audit::SQLITE_SCHEMA).map_err(open_err)?;
        let lock_dir = path.parent().unwrap_or(Path::new(".")).join("locks");
        let readers = Readers { path: path.to_owned(), idle: Arc::default() };
        let (guard, wal) = (Guard::new(path), Arc::new(Mutex::new(WalBound::new(path))));
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)), guard, wal, readers, lock_dir })
    }

    /// Runs `f` on a read connection off the async runtime.
    pub(crate) async fn with_reader<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let guard = self.guard.clone();
        tokio::task::spawn_blocking(move || {
            guard.check()?;
            let conn = readers.take()?;
            let out = f(&conn);
            if let Err(e) = guard.confirm() {
                // Never closed: a close may checkpoint (relflow_queue::file::sigbus).
                std::mem::forget(conn);
                return Err(e.into());
            }
            readers.put(conn);
            out
        })
        .await?
    }

    /// SQLite's plan for listing and counting `filter` (`EXPLAIN QUERY
    /// PLAN` lines, list first): how the plan test, and an operator, see
    /// that every listing seeks an index.
    pub async fn explain(&self, filter: &RunFilter) -> Result<Vec<String>> {
        let f = filter.clone();
        self.with_reader(move |c| {
            let mut lines = Vec::new();
            let topics = resolve_topics(c, &f)?;
            for (what, (sql, args)) in [("list", list_sql(&f, topics.clone())?), ("count", count_sql(&f, topics))] {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(3))?;
                for detail in rows {
                    lines.push(format!("{what}: {}", detail?));
                }
            }
            Ok(lines)
        })
        .await
    }

    /// SQLite's plan for [`RunStore::has_succeeded`], which the worker asks
    /// for every message: the plan test checks it seeks the message's runs.
    pub async fn explain_has_succeeded(&self) -> Result<Vec<String>> {
        self.with_reader(move |c| {
            let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {HAS_SUCCEEDED}"))?;
            let rows = stmt.query_map(params!["m", "r"], |r| r.get::<_, String>(3))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
    }

    /// Runs `f` on the connection off the async runtime (SQLite blocks).
    pub(crate) async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (conn, guard, wal) = (Arc::clone(&self.conn), self.guard.clone(), Arc::clone(&self.wal));
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poison| poison.into_inner());
            guard.check()?;
            let out = f(&mut conn);
            // A SIGBUS caught meanwhile: not even a commit is to be trusted.
            guard.confirm()?;
            // Reads come through here too; an error is a failed write
            // often enough (a full disk) to treat each one as one.
            wal.lock().unwrap_or_else(|p| p.into_inner()).after(&conn, out.is_ok());
            out
        })
        .await?
    }
}

/// Inserts `run` as started now, in `status` (running, or awaiting approval).
pub(crate) fn insert_run(
    c: &Connection,
    run: &NewRun,
    status: RunStatus,
    (subject, terms): &(String, Vec<String>),
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO runs (id, message_id, topic, rule, playbook, attempt, status, started_at, worker, message, subject)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            run.id,
            run.message_id,
            run.topic,
            run.rule,
            run.playbook,
            run.attempt,
            status.as_str(),
            Utc::now().timestamp_millis(),
            run.worker,
            run.message.to_string(),
            subject
        ],
    )?;
    insert_terms(c, &run.id, terms)
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn start_announced(&self, run: &NewRun, events: &[NewEvent]) -> Result<()> {
        let (run, events) = (run.clone(), events.to_vec());
        // Worked out before taking the writer, which other runs wait for.
        let indexed = crate::indexed(&run.topic, &run.message);
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE runs SET status = 'abandoned', finished_at = ?3,
                        error = 'the worker running it stopped before it finished; the message was redelivered'
                 WHERE message_id = ?1 AND rule = ?2 AND status = 'running'",
                params![run.message_id, run.rule, Utc::now().timestamp_millis()],
            )?;
            insert_run(&tx, &run, RunStatus::Running, &indexed)?;
            crate::outbox::sqlite::insert(&tx, &events)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn finish_announced(&self, id: &str, outcome: &RunOutcome, events: &[NewEvent]) -> Result<()> {
        let (id, o, events) = (id.to_owned(), outcome.clone(), events.to_vec());
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE runs SET status = ?2, exit_code = ?3, finished_at = ?4, ok = ?5, changed = ?6, failed = ?7,
                        skipped = ?8, unreachable = ?9, tasks = ?10, error = ?11
                 WHERE id = ?1",
                params![
                    id,
                    o.status.as_str(),
                    o.exit_code,
                    Utc::now().timestamp_millis(),
                    o.counts.ok,
                    o.counts.changed,
                    o.counts.failed,
                    o.counts.skipped,
                    o.counts.unreachable,
                    o.tasks.to_string(),
                    o.error
                ],
            )?;
            tx.execute(
                "INSERT INTO run_logs (id, log) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET log = excluded.log",
                params![id, o.log],
            )?;
            crate::outbox::sqlite::insert(&tx, &events)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn has_succeeded(&self, message_id: &str, rule: &str) -> Result<bool> {
        let (m, r) = (message_id.to_owned(), rule.to_owned());
        self.with_conn(move |c| {
            let found = c.query_row(HAS_SUCCEEDED, params![m, r], |_| Ok(())).optional()?;
            Ok(found.is_some())
        })
        .await
    }

    async fn list(&self, f: &RunFilter) -> Result<Vec<RunRecord>> {
        let f = f.clone();
        self.with_reader(move |c| {
            let (sql, args) = list_sql(&f, resolve_topics(c, &f)?)?;
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), record)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn count(&self, f: &RunFilter) -> Result<u64> {
        if let Some((rule, status)) = f.counter_key() {
            return Ok(sum(&self.summary().await?, rule.as_deref(), status));
        }
        let f = f.clone();
        self.with_reader(move |c| {
            let (sql, args) = count_sql(&f, resolve_topics(c, &f)?);
            let n: i64 = c.query_row(&sql, params_from_iter(args), |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    async fn summary(&self) -> Result<Vec<RuleCount>> {
        self.with_reader(|c| {
            let mut stmt =
                c.prepare_cached("SELECT rule, status, n FROM run_counts WHERE n > 0 ORDER BY rule, status")?;
            let rows = stmt.query_map([], |r| {
                let status: String = r.get(1)?;
                Ok(RuleCount {
                    rule: r.get(0)?,
                    status: RunStatus::parse(&status).unwrap_or(RunStatus::Error),
                    count: r.get::<_, i64>(2)? as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn runs_per_hour(&self, since: DateTime<Utc>) -> Result<Vec<HourlyCount>> {
        self.with_reader(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT hour, status, n FROM run_hours WHERE hour >= ?1 / 3600000 * 3600000 AND n > 0
                 ORDER BY hour, status",
            )?;
            let rows = stmt.query_map(params![since.timestamp_millis()], |r| {
                let status: String = r.get(1)?;
                Ok(HourlyCount {
                    hour: time(r.get(0)?),
                    status: RunStatus::parse(&status).unwrap_or(RunStatus::Error),
                    count: r.get::<_, i64>(2)? as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<RunDetail>> {
        let prefix = id.to_owned();
        self.with_reader(move |c| {
            // Prefix match, so `relflow runs show 3f2a` works like a short git hash.
            let (from, to) = prefix_range(&prefix);
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS}, message, tasks,
                        COALESCE((SELECT l.log FROM run_logs l WHERE l.id = runs.id), runs.log)
                 FROM runs WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 2"
            ))?;
            let found = stmt
                .query_map(params![from, to], |r| {
                    let parse = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null);
                    Ok(RunDetail {
                        record: record(r)?,
                        message: parse(r.get(18)?),
                        tasks: parse(r.get(19)?),
                        log: r.get(20)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            crate::page::unique(found, &prefix)
        })
        .await
    }

    async fn count_noop(&self) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO counters (name, value) VALUES ('noop', 1)
                 ON CONFLICT (name) DO UPDATE SET value = value + 1",
                [],
            )?;
            Ok(())
        })
        .await
    }

    async fn count_noops(&self, n: u64) -> Result<()> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO counters (name, value) VALUES ('noop', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = value + ?1",
                [n],
            )?;
            Ok(())
        })
        .await
    }

    async fn lock(&self, name: &str) -> Result<LockGuard> {
        // flock: every worker process on this host sees it, and the kernel
        // releases it when the holder dies, however it dies.
        let path = self.lock_dir.join(format!("{}.lock", hex(&lock_key(name))));
        let dir = self.lock_dir.clone();
        let file = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))
        })
        .await?
        .map_err(|e| StoreError::Backend(format!("cannot take the concurrency-group lock {name:?}: {e}")))?;
        Ok(LockGuard::new(file))
    }

    async fn lock_run(&self, message_id: &str, rule: &str) -> Result<LockGuard> {
        // One lock file per stripe, not per run: per-run files would pile up
        // forever. Two runs of one stripe merely take turns; no deadlock, as
        // a worker takes the stripe first, before its group lock and slot.
        let stripe = lock_key(&format!("{message_id}\u{1f}{rule}"))[0] % RUN_LOCK_STRIPES;
        self.lock(&format!("relflow-run-stripe\u{1f}{stripe}")).await
    }

    async fn noop_count(&self) -> Result<u64> {
        self.with_conn(|c| {
            let n: Option<i64> =
                c.query_row("SELECT value FROM counters WHERE name = 'noop'", [], |r| r.get(0)).optional()?;
            Ok(n.unwrap_or(0) as u64)
        })
        .await
    }
}
