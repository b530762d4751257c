//! The default run store: tables in the same SQLite file as the embedded queue.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value as Sql;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::{
    lock_key, time, FilterValue, HourlyCount, LockGuard, NewEvent, NewRun, Result, RunDetail, RunFilter, RunOutcome,
    RunRecord, RunStatus, RunStore, StoreError, TaskCounts,
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
CREATE INDEX IF NOT EXISTS runs_message_rule ON runs (message_id, rule);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

const RECORD_COLUMNS: &str = "id, message_id, topic, rule, playbook, attempt, status, exit_code, started_at, \
     finished_at, ok, changed, failed, skipped, unreachable, error, worker";

/// The SQLite [`RunStore`]. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Lock files for concurrency groups: `<db dir>/locks/<sha256>.lock`.
    lock_dir: std::path::PathBuf,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn record(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    let status: String = r.get(6)?;
    Ok(RunRecord {
        id: r.get(0)?,
        message_id: r.get(1)?,
        topic: r.get(2)?,
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

/// The `WHERE` clause (never empty) and its arguments for a filter.
fn where_clause(f: &RunFilter) -> (String, Vec<Sql>) {
    let conditions = f.conditions();
    let mut sql = String::from("1=1");
    for (i, (clause, _)) in conditions.iter().enumerate() {
        sql.push_str(&format!(" AND {clause} ?{}", i + 1));
    }
    let args = conditions
        .into_iter()
        .map(|(_, v)| match v {
            FilterValue::Text(t) => Sql::Text(t),
            FilterValue::Millis(ms) => Sql::Integer(ms),
        })
        .collect();
    (sql, args)
}

impl SqliteStore {
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref();
        let open_err = |source| StoreError::Open { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        conn.execute_batch(crate::outbox::sqlite::SCHEMA).map_err(open_err)?;
        conn.execute_batch(crate::audit::SQLITE_SCHEMA).map_err(open_err)?;
        let lock_dir = path.parent().unwrap_or(Path::new(".")).join("locks");
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)), lock_dir })
    }

    /// Runs `f` on the connection off the async runtime (SQLite blocks).
    pub(crate) async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poison| poison.into_inner());
            f(&mut conn)
        })
        .await?
    }
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn start_announced(&self, run: &NewRun, events: &[NewEvent]) -> Result<()> {
        let (run, events) = (run.clone(), events.to_vec());
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE runs SET status = 'abandoned', finished_at = ?3,
                        error = 'the worker running it stopped before it finished; the message was redelivered'
                 WHERE message_id = ?1 AND rule = ?2 AND status = 'running'",
                params![run.message_id, run.rule, Utc::now().timestamp_millis()],
            )?;
            tx.execute(
                "INSERT INTO runs (id, message_id, topic, rule, playbook, attempt, status, started_at, worker, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9)",
                params![
                    run.id,
                    run.message_id,
                    run.topic,
                    run.rule,
                    run.playbook,
                    run.attempt,
                    Utc::now().timestamp_millis(),
                    run.worker,
                    run.message.to_string()
                ],
            )?;
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
                        skipped = ?8, unreachable = ?9, tasks = ?10, log = ?11, error = ?12
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
                    o.log,
                    o.error
                ],
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
            let found = c
                .query_row(
                    "SELECT 1 FROM runs WHERE message_id = ?1 AND rule = ?2 AND status = 'succeeded' LIMIT 1",
                    params![m, r],
                    |_| Ok(()),
                )
                .optional()?;
            Ok(found.is_some())
        })
        .await
    }

    async fn list(&self, f: &RunFilter) -> Result<Vec<RunRecord>> {
        let f = f.clone();
        self.with_conn(move |c| {
            let (clause, args) = where_clause(&f);
            let limit = if f.limit == 0 { i64::MAX } else { f.limit as i64 };
            let sql = format!(
                "SELECT {RECORD_COLUMNS} FROM runs WHERE {clause} ORDER BY started_at DESC, id LIMIT {limit} OFFSET {}",
                f.offset
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), record)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn count(&self, f: &RunFilter) -> Result<u64> {
        let f = f.clone();
        self.with_conn(move |c| {
            let (clause, args) = where_clause(&f);
            let n: i64 =
                c.query_row(&format!("SELECT COUNT(*) FROM runs WHERE {clause}"), params_from_iter(args), |r| {
                    r.get(0)
                })?;
            Ok(n as u64)
        })
        .await
    }

    async fn runs_per_hour(&self, since: DateTime<Utc>) -> Result<Vec<HourlyCount>> {
        self.with_conn(move |c| {
            // Integer division by an hour in ms buckets `started_at`; plain SQL
            // so the PostgreSQL store can say the same thing.
            let mut stmt = c.prepare(
                "SELECT (started_at / 3600000) * 3600000 AS hour, status, COUNT(*) FROM runs
                 WHERE started_at >= ?1 GROUP BY hour, status ORDER BY hour, status",
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
        self.with_conn(move |c| {
            // Prefix match, so `relflow runs show 3f2a` works like a short git hash.
            let pattern = format!("{}%", prefix.replace(['%', '_'], ""));
            let mut stmt =
                c.prepare(&format!("SELECT {RECORD_COLUMNS}, message, tasks, log FROM runs WHERE id LIKE ?1 LIMIT 2"))?;
            let mut found = stmt
                .query_map(params![pattern], |r| {
                    let parse = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null);
                    Ok(RunDetail {
                        record: record(r)?,
                        message: parse(r.get(17)?),
                        tasks: parse(r.get(18)?),
                        log: r.get(19)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            match found.len() {
                0 => Ok(None),
                1 => Ok(found.pop()),
                _ if found.iter().any(|d| d.record.id == prefix) => {
                    Ok(found.into_iter().find(|d| d.record.id == prefix))
                }
                _ => Err(StoreError::Ambiguous(prefix)),
            }
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

    async fn noop_count(&self) -> Result<u64> {
        self.with_conn(|c| {
            let n: Option<i64> =
                c.query_row("SELECT value FROM counters WHERE name = 'noop'", [], |r| r.get(0)).optional()?;
            Ok(n.unwrap_or(0) as u64)
        })
        .await
    }
}
