//! The shared run store: PostgreSQL, so workers on many hosts see one history
//! and agree on which (message, rule) runs already succeeded.
//!
//! One `tokio_postgres::Client` serves the worker's writes, another the
//! listings (each pipelines concurrent queries on its connection), so a page
//! load never holds up a run being recorded; if a connection drops
//! (PostgreSQL restart, network blip) the next call reconnects, so a worker
//! outlives its database.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use relflow_core::redact::redact_url;
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use crate::page::{matching, prefix_range, sum, topics_sql};
use crate::{
    stored_subject, time, FilterValue, HourlyCount, LockGuard, NewEvent, NewRun, Result, RuleCount, RunDetail,
    RunFilter, RunOutcome, RunRecord, RunStatus, RunStore, StoreError, TaskCounts, COUNT_CAP,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relflow_runs (
    id          TEXT PRIMARY KEY,
    message_id  TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    playbook    TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    exit_code   INTEGER,
    started_at  BIGINT  NOT NULL,   -- unix ms, as in the SQLite store
    finished_at BIGINT,
    ok INTEGER NOT NULL DEFAULT 0, changed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0, unreachable INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    worker      TEXT    NOT NULL,
    message     JSONB   NOT NULL,
    tasks       JSONB   NOT NULL DEFAULT '[]',
    log         TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS relflow_runs_message_rule ON relflow_runs (message_id, rule);
CREATE TABLE IF NOT EXISTS relflow_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
";

const RECORD_COLUMNS: &str = "id, message_id, topic, rule, playbook, attempt, status, exit_code, started_at, \
     finished_at, ok, changed, failed, skipped, unreachable, error, worker, subject";

/// The PostgreSQL [`RunStore`].
pub struct PgStore {
    url: String,
    client: Mutex<Option<Client>>,
    /// For listings and lookups, shared by concurrent readers.
    reader: Mutex<Option<Arc<Client>>>,
}

/// A statement written with SQLite's `?N` placeholders, as PostgreSQL's
/// `$N`: each concern's SQL is written once for both backends.
pub(crate) fn dialect(sql: &str) -> String {
    sql.replace('?', "$")
}

pub(crate) fn pg(e: tokio_postgres::Error) -> StoreError {
    // tokio-postgres says only "db error"; the server's words are inside.
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("PostgreSQL: {}: {}", db.severity(), db.message())),
        None => StoreError::Backend(format!("PostgreSQL: {e}")),
    }
}

/// Any fixed key: serializes schema set-up between workers starting at once.
const SCHEMA_LOCK: i64 = 0x72656c666c6f77; // "relflow"

fn count(r: &Row, i: usize) -> u32 {
    r.get::<_, i32>(i).max(0) as u32
}

fn record(r: &Row) -> RunRecord {
    RunRecord {
        subject: stored_subject(r.get(17), r.get(2)),
        id: r.get(0),
        message_id: r.get(1),
        topic: r.get(2),
        rule: r.get(3),
        playbook: r.get(4),
        attempt: count(r, 5),
        status: RunStatus::parse(r.get(6)).unwrap_or(RunStatus::Error),
        exit_code: r.get(7),
        started_at: time(r.get(8)),
        finished_at: r.get::<_, Option<i64>>(9).map(time),
        counts: TaskCounts {
            ok: count(r, 10),
            changed: count(r, 11),
            failed: count(r, 12),
            skipped: count(r, 13),
            unreachable: count(r, 14),
        },
        error: r.get(15),
        worker: r.get(16),
    }
}

/// Opens a connection and drives it on its own task.
pub(crate) async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(|e| {
        // tokio-postgres says only "db error" for what the server refused
        // (no such database, bad password): the server's words are in the source.
        let why = e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_owned());
        StoreError::Backend(format!("cannot connect to PostgreSQL at {}: {why}", redact_url(url)))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL connection closed: {e}");
        }
    });
    Ok(client)
}

impl PgStore {
    /// Connects and creates the tables if needed. `url` is a libpq-style URL
    /// or key=value string, e.g. `postgres://relflow@db.example/relflow`.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let mut client = connect(url).await?;
        // Two `CREATE TABLE IF NOT EXISTS` at once can still collide in
        // PostgreSQL's catalog, so workers starting together take turns.
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await.map_err(pg)?;
        if !schema_is_current(&tx).await? {
            upgrade(&tx).await?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(PgStore { url: url.to_owned(), client: Mutex::new(Some(client)), reader: Mutex::default() })
    }

    /// The read connection, reconnecting if the last one died. Held only
    /// while cloning the handle: readers run their queries side by side.
    async fn reader(&self) -> Result<Arc<Client>> {
        let mut slot = self.reader.lock().await;
        match slot.as_ref() {
            Some(c) if !c.is_closed() => Ok(Arc::clone(c)),
            _ => Ok(Arc::clone(slot.insert(Arc::new(connect(&self.url).await?)))),
        }
    }

    /// PostgreSQL's plan for listing and counting `filter` (`EXPLAIN`, list
    /// first) when it may not scan the table: shows that an index serves
    /// every listing (on a small table a scan would be cheaper and chosen).
    pub async fn explain(&self, filter: &RunFilter) -> Result<Vec<String>> {
        let mut client = connect(&self.url).await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.batch_execute("SET LOCAL enable_seqscan = off").await.map_err(pg)?;
        let mut lines = Vec::new();
        let topics = resolve_topics(&tx, filter).await?;
        for (what, (sql, args)) in [("list", list_sql(filter, topics.clone())?), ("count", count_sql(filter, topics))] {
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
            for row in tx.query(&format!("EXPLAIN {sql}"), &refs).await.map_err(pg)? {
                lines.push(format!("{what}: {}", row.get::<_, String>(0)));
            }
        }
        Ok(lines)
    }

    /// The live client, reconnecting if the last one died.
    pub(crate) async fn client(&self) -> Result<tokio::sync::MappedMutexGuard<'_, Client>> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(connect(&self.url).await?);
        }
        Ok(tokio::sync::MutexGuard::map(slot, |c| c.as_mut().expect("just connected")))
    }
}

/// Every statement that makes the schema, in order. The conditional search
/// reindex between them is in [`upgrade`].
fn schema_parts() -> [std::borrow::Cow<'static, str>; 11] {
    [
        SCHEMA.into(),
        crate::schema::POSTGRES.into(),
        crate::outbox::postgres::SCHEMA.into(),
        crate::state::postgres::schema().into(),
        crate::timers::postgres::schema().into(),
        crate::fleet::postgres::schema().into(),
        crate::control::postgres::SCHEMA.into(),
        crate::approval::schema("BIGINT").into(),
        crate::audit::PG_SCHEMA.into(),
        crate::pg_lock::SCHEMA.into(),
        SCHEMA_VERSION_TABLE.into(),
    ]
}

const SCHEMA_VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS relflow_schema (id INTEGER PRIMARY KEY CHECK (id = 1), fingerprint TEXT NOT NULL);";

/// The digest of [`schema_parts`]: a release that changes the schema changes it.
fn schema_fingerprint() -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    for part in schema_parts() {
        digest.update(part.as_bytes());
    }
    digest.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether this release's schema is already in place. Checked before any
/// DDL because `CREATE INDEX` and `ALTER TABLE` lock their table even when
/// there is nothing to do: a CLI call taking those locks while a worker
/// records a run across several tables deadlocked the two.
async fn schema_is_current(tx: &tokio_postgres::Transaction<'_>) -> Result<bool> {
    let exists: bool = tx.query_one("SELECT to_regclass('relflow_schema') IS NOT NULL", &[]).await.map_err(pg)?.get(0);
    if !exists {
        return Ok(false);
    }
    let row = tx.query_opt("SELECT fingerprint FROM relflow_schema WHERE id = 1", &[]).await.map_err(pg)?;
    Ok(row.is_some_and(|r| r.get::<_, String>(0) == schema_fingerprint()))
}

/// Creates or upgrades every table, then records the schema's fingerprint.
async fn upgrade(tx: &tokio_postgres::Transaction<'_>) -> Result<()> {
    let new_terms: bool =
        tx.query_one("SELECT to_regclass('relflow_run_terms') IS NULL", &[]).await.map_err(pg)?.get(0);
    let [runs, runs_upgrade, rest @ ..] = schema_parts();
    tx.batch_execute(&runs).await.map_err(pg)?;
    tx.batch_execute(&runs_upgrade).await.map_err(pg)?;
    if new_terms {
        let n = crate::reindex::postgres(tx).await?;
        tracing::info!("indexed {n} earlier runs for search");
    }
    for part in rest {
        tx.batch_execute(&part).await.map_err(pg)?;
    }
    tx.execute(
        "INSERT INTO relflow_schema (id, fingerprint) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
        &[&schema_fingerprint()],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Inserts `run` as started now, in `status` (running, or awaiting approval).
pub(crate) async fn insert_run(
    c: &impl tokio_postgres::GenericClient,
    run: &NewRun,
    status: RunStatus,
    (subject, terms): &(String, Vec<String>),
) -> Result<()> {
    c.execute(
        "INSERT INTO relflow_runs (id, message_id, topic, rule, playbook, attempt, status, started_at, worker, message,
                                   subject)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &run.id,
            &run.message_id,
            &run.topic,
            &run.rule,
            &run.playbook,
            &(run.attempt as i32),
            &status.as_str(),
            &Utc::now().timestamp_millis(),
            &run.worker,
            &run.message,
            subject,
        ],
    )
    .await
    .map_err(pg)?;
    // Indexed for search in the same transaction, in one statement.
    c.execute("INSERT INTO relflow_run_terms (term, run_id) SELECT unnest($2::text[]), $1", &[&run.id, terms])
        .await
        .map_err(pg)?;
    Ok(())
}

#[async_trait]
impl RunStore for PgStore {
    async fn start_announced(&self, run: &NewRun, events: &[NewEvent]) -> Result<()> {
        // Worked out before taking the connection, which other runs wait for.
        let indexed = crate::indexed(&run.topic, &run.message);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let now = Utc::now().timestamp_millis();
        tx.execute(
            "UPDATE relflow_runs SET status = 'abandoned', finished_at = $3,
                    error = 'the worker running it stopped before it finished; the message was redelivered'
             WHERE message_id = $1 AND rule = $2 AND status = 'running'",
            &[&run.message_id, &run.rule, &now],
        )
        .await
        .map_err(pg)?;
        insert_run(&tx, run, RunStatus::Running, &indexed).await?;
        crate::outbox::postgres::insert(&tx, events).await?;
        tx.commit().await.map_err(pg)
    }

    async fn finish_announced(&self, id: &str, o: &RunOutcome, events: &[NewEvent]) -> Result<()> {
        let c = o.counts;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute(
            "UPDATE relflow_runs SET status = $2, exit_code = $3, finished_at = $4, ok = $5, changed = $6,
                        failed = $7, skipped = $8, unreachable = $9, tasks = $10, error = $11
                 WHERE id = $1",
            &[
                &id,
                &o.status.as_str(),
                &o.exit_code,
                &Utc::now().timestamp_millis(),
                &(c.ok as i32),
                &(c.changed as i32),
                &(c.failed as i32),
                &(c.skipped as i32),
                &(c.unreachable as i32),
                &o.tasks,
                &o.error,
            ],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "INSERT INTO relflow_run_logs (id, log) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET log = excluded.log",
            // PostgreSQL TEXT cannot hold NUL; a playbook printing one must not lose its run record.
            &[&id, &o.log.replace('\0', "\u{FFFD}")],
        )
        .await
        .map_err(pg)?;
        crate::outbox::postgres::insert(&tx, events).await?;
        tx.commit().await.map_err(pg)
    }

    async fn has_succeeded(&self, message_id: &str, rule: &str) -> Result<bool> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT 1 FROM relflow_runs WHERE message_id = $1 AND rule = $2 AND status = 'succeeded' LIMIT 1",
                &[&message_id, &rule],
            )
            .await
            .map_err(pg)?;
        Ok(row.is_some())
    }

    async fn list(&self, f: &RunFilter) -> Result<Vec<RunRecord>> {
        let client = self.reader().await?;
        let (sql, args) = list_sql(f, resolve_topics(client.as_ref(), f).await?)?;
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        Ok(client.query(&sql, &refs).await.map_err(pg)?.iter().map(record).collect())
    }

    async fn count(&self, f: &RunFilter) -> Result<u64> {
        if let Some((rule, status)) = f.counter_key() {
            return Ok(sum(&self.summary().await?, rule.as_deref(), status));
        }
        let client = self.reader().await?;
        let (sql, args) = count_sql(f, resolve_topics(client.as_ref(), f).await?);
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        let row = client.query_one(&sql, &refs).await.map_err(pg)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn summary(&self) -> Result<Vec<RuleCount>> {
        let client = self.reader().await?;
        let rows = client
            .query("SELECT rule, status, n FROM relflow_run_counts WHERE n > 0 ORDER BY rule, status", &[])
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| RuleCount {
                rule: r.get(0),
                status: RunStatus::parse(r.get(1)).unwrap_or(RunStatus::Error),
                count: r.get::<_, i64>(2).max(0) as u64,
            })
            .collect())
    }

    async fn runs_per_hour(&self, since: DateTime<Utc>) -> Result<Vec<HourlyCount>> {
        let client = self.reader().await?;
        let rows = client
            .query(
                "SELECT hour, status, n FROM relflow_run_hours WHERE hour >= $1::BIGINT / 3600000 * 3600000 AND n > 0
                 ORDER BY hour, status",
                &[&since.timestamp_millis()],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| HourlyCount {
                hour: time(r.get(0)),
                status: RunStatus::parse(r.get(1)).unwrap_or(RunStatus::Error),
                count: r.get::<_, i64>(2).max(0) as u64,
            })
            .collect())
    }

    async fn get(&self, id: &str) -> Result<Option<RunDetail>> {
        // A byte-order range on the C-collated id index: a seek, and `%` or
        // `_` in the prefix are plain characters.
        let (from, to) = prefix_range(id);
        let client = self.reader().await?;
        let rows = client
            .query(
                &format!(
                    r#"SELECT {RECORD_COLUMNS}, message, tasks,
                              COALESCE((SELECT l.log FROM relflow_run_logs l WHERE l.id = r.id), r.log)
                       FROM relflow_runs r
                       WHERE id COLLATE "C" >= $1 AND id COLLATE "C" < $2 ORDER BY id COLLATE "C" LIMIT 2"#
                ),
                &[&from, &to],
            )
            .await
            .map_err(pg)?;
        let found = rows
            .iter()
            .map(|r| RunDetail { record: record(r), message: r.get(18), tasks: r.get(19), log: r.get(20) })
            .collect();
        crate::page::unique(found, id)
    }

    async fn count_noop(&self) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO relflow_counters (name, value) VALUES ('noop', 1)
                 ON CONFLICT (name) DO UPDATE SET value = relflow_counters.value + 1",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn count_noops(&self, n: u64) -> Result<()> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO relflow_counters (name, value) VALUES ('noop', $1)
                 ON CONFLICT (name) DO UPDATE SET value = relflow_counters.value + $1",
                &[&n],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn lock(&self, name: &str) -> Result<LockGuard> {
        // A lease row queued behind an advisory lock, on a connection of its
        // own: see `pg_lock` for why an advisory lock alone would let a
        // restart of the database start a second run of the group.
        crate::pg_lock::lock(&self.url, name).await
    }

    async fn noop_count(&self) -> Result<u64> {
        let client = self.client().await?;
        let row = client.query_opt("SELECT value FROM relflow_counters WHERE name = 'noop'", &[]).await.map_err(pg)?;
        Ok(row.map(|r| r.get::<_, i64>(0).max(0) as u64).unwrap_or(0))
    }
}

type Args = Vec<Box<dyn ToSql + Sync + Send>>;

/// The stored topics a topic-pattern filter matches (`None`: not a pattern).
async fn resolve_topics(c: &impl tokio_postgres::GenericClient, f: &RunFilter) -> Result<Option<Vec<String>>> {
    let Some(pattern) = f.topic_pattern()? else { return Ok(None) };
    let rows = c.query(&topics_sql("relflow_runs"), &[]).await.map_err(pg)?;
    Ok(Some(matching(&pattern, rows.iter().map(|r| r.get(0)).collect())))
}

/// The WHERE clause and its arguments for a [`RunFilter`]; `topics` as
/// [`RunFilter::conditions`] takes them.
fn filter_sql(f: &RunFilter, topics: Option<Vec<String>>) -> (String, Args) {
    let mut clauses = vec!["TRUE".to_owned()];
    let mut args: Args = Vec::new();
    for (clause, v) in f.conditions(topics) {
        match v {
            FilterValue::AnyOf(values) => {
                args.push(Box::new(values));
                clauses.push(format!("{clause} = ANY(${})", args.len()));
                continue;
            }
            FilterValue::Term(from, to) => {
                args.extend([Box::new(from) as Box<dyn ToSql + Sync + Send>, Box::new(to)]);
                let (a, b) = (args.len() - 1, args.len());
                clauses.push(format!(
                    "{clause} IN (SELECT run_id FROM relflow_run_terms WHERE term >= ${a} AND term < ${b})"
                ));
                continue;
            }
            FilterValue::Text(t) => args.push(Box::new(t)),
            FilterValue::Millis(ms) => args.push(Box::new(ms)),
            FilterValue::After(ms, id) => {
                args.extend([Box::new(ms) as Box<dyn ToSql + Sync + Send>, Box::new(id)]);
                clauses.push(format!("{clause} (${}, ${})", args.len() - 1, args.len()));
                continue;
            }
        }
        clauses.push(format!("{clause} ${}", args.len()));
    }
    (clauses.join(" AND "), args)
}

/// A page of runs: an index walk in `(started_at, id)` order.
fn list_sql(f: &RunFilter, topics: Option<Vec<String>>) -> Result<(String, Args)> {
    let (where_sql, args) = filter_sql(f, topics);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM relflow_runs WHERE {where_sql} ORDER BY started_at DESC, id DESC LIMIT {} OFFSET {}",
        f.sql_limit(),
        f.checked_offset()?
    );
    Ok((sql, args))
}

/// Counts rows for filters the counters do not cover, stopping past the cap.
fn count_sql(f: &RunFilter, topics: Option<Vec<String>>) -> (String, Args) {
    let (where_sql, args) = filter_sql(&RunFilter { cursor: None, ..f.clone() }, topics);
    let sql =
        format!("SELECT COUNT(*) FROM (SELECT 1 FROM relflow_runs WHERE {where_sql} LIMIT {}) capped", COUNT_CAP + 1);
    (sql, args)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_failed_connect_does_not_show_the_password() {
        // Nothing listens on port 1, so the connect fails at once.
        let urls = [
            "postgres://relflow:Pw1@Pw2:Pw3@127.0.0.1:1/relflow?connect_timeout=2",
            "host=127.0.0.1 port=1 user=relflow password='Pw1@Pw2 Pw3' connect_timeout=2",
        ];
        for url in urls {
            let Err(err) = super::PgStore::connect(url).await else { panic!("connected to port 1?") };
            let err = err.to_string();
            assert!(err.contains("***") && !err.contains("Pw"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_missing_database_is_named_not_just_db_error() {
        let url = "host=127.0.0.1 user=postgres dbname=relflow_no_such_db_for_this_test";
        let Err(err) = super::PgStore::connect(url).await else { panic!("connected to a missing database?") };
        let err = err.to_string();
        assert!(err.contains("relflow_no_such_db_for_this_test") && err.contains("does not exist"), "{err}");
    }
}
