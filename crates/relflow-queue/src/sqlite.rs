//! The embedded queue: one SQLite file in WAL mode, shared by every worker
//! process on the machine.
//!
//! A claim is a lease: the row gets `lease_until = now + visibility_timeout`
//! and is invisible to other claims until that passes. A live worker renews
//! the lease with [`WorkQueue::keep_alive`]; a dead one stops renewing, the
//! lease runs out and the row is claimable again. That is how a SIGKILLed
//! worker's message gets redelivered without any coordinator.
//!
//! The `(attempt, deliveries)` pair doubles as a fencing token: `ack`,
//! `retry`, `dead_letter` and `release` only touch the row if it still
//! carries the pair the worker claimed it with. A worker whose lease ran out
//! (it hung, then woke up) can therefore never ack away a delivery that now
//! belongs to someone else. `deliveries` counts the handouts of the current
//! attempt (a retry starts it again, as a retried copy on RabbitMQ starts a
//! fresh delivery count), so it alone does not fence; but a retry always
//! raises `attempt`, so the pair never repeats for a row.
//!
//! Two things keep it fast without weakening any of that: every call goes
//! through one writer thread that commits calls waiting together in one
//! transaction (writer.rs: a claim and an ack share an fsync), and a waiting
//! claim sleeps on inotify on the WAL file (wal_watch.rs), so another
//! process's enqueue wakes it at once while an idle worker costs nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::Notify;

use crate::wal_watch::WalWatch;
use crate::writer::Writer;
use crate::{DeadLetter, Delivery, QueueDepth, QueueError, Result, WorkQueue};

/// Tuning for [`SqliteQueue`]; the defaults suit a worker running playbooks.
#[derive(Debug, Clone)]
pub struct SqliteQueueOptions {
    /// How long a claim stays invisible to other workers without a
    /// `keep_alive`. A crashed worker's message is redelivered after this.
    pub visibility_timeout: Duration,
    /// How often a waiting `claim` looks again even if nobody wrote to the
    /// queue: that is how a delayed retry is noticed once it is due. Writes
    /// by this or another process (`relflow publish`, the bridge) wake it at
    /// once (inotify on the WAL file).
    pub poll_interval: Duration,
}

impl Default for SqliteQueueOptions {
    fn default() -> Self {
        SqliteQueueOptions { visibility_timeout: Duration::from_secs(60), poll_interval: Duration::from_millis(200) }
    }
}

/// The embedded [`WorkQueue`]. Cheap to clone; clones share one connection,
/// owned by a writer thread that commits concurrent calls together.
#[derive(Clone)]
pub struct SqliteQueue {
    writer: Writer,
    options: SqliteQueueOptions,
    /// Wakes local `claim` calls as soon as this process enqueues, so a
    /// single-process `relflow serve` does not wait for the poll interval.
    notify: Arc<Notify>,
    /// Wakes a waiting claim when any process writes the queue (`None` if
    /// inotify is unavailable: then claims rely on `poll_interval`).
    wal: Option<Arc<WalWatch>>,
    path: PathBuf,
    /// The file opened, as (device, inode): a file deleted or replaced
    /// under us would otherwise go on being used unlinked, unseen by every
    /// other process.
    file: (u64, u64),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    payload     BLOB    NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 1,
    deliveries  INTEGER NOT NULL DEFAULT 0,
    not_before  INTEGER NOT NULL,   -- unix ms; ready once now >= not_before
    lease_until INTEGER,            -- unix ms; claimed while now < lease_until
    last_error  TEXT
);
CREATE INDEX IF NOT EXISTS queue_ready ON queue (not_before, id);
-- depth() counts in-flight rows with a seek, not a scan of the backlog.
CREATE INDEX IF NOT EXISTS queue_leased ON queue (lease_until) WHERE lease_until IS NOT NULL;
CREATE TABLE IF NOT EXISTS dead_letters (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    payload  BLOB    NOT NULL,
    reason   TEXT    NOT NULL,
    attempt  INTEGER NOT NULL,
    dead_at  INTEGER NOT NULL
);
-- Dead letters by age (retention); also the small index count(*) walks.
CREATE INDEX IF NOT EXISTS dead_letters_dead_at ON dead_letters (dead_at);
";

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) use crate::file::open_connection;

impl SqliteQueue {
    /// Opens (creating if needed) the queue in the SQLite file at `path`.
    pub fn open(path: impl AsRef<Path>, options: SqliteQueueOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let open_err = |source| QueueError::Open { path: path.display().to_string(), source };
        let conn = open_connection(&path).map_err(open_err)?;
        // Before the schema, so a new file needs no rewrite.
        crate::reclaim::enable(&conn).map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        // After the schema: the WAL file exists now, and stays while the
        // connection is open.
        let wal = WalWatch::new(&path).map(Arc::new);
        let writer = Writer::start(conn, &path)
            .map_err(|e| QueueError::Backend(format!("cannot start the queue's writer thread: {e}")))?;
        let file = file_id(&path).map_err(|e| QueueError::Backend(format!("cannot stat {}: {e}", path.display())))?;
        Ok(SqliteQueue { writer, options, notify: Arc::new(Notify::new()), wal, path, file })
    }

    /// Whether `path` is still the file this queue opened.
    fn check_file(&self) -> Result<()> {
        let gone = |what: &str| {
            Err(QueueError::Gone(format!(
                "{} was {what} while this process had it open; what it writes now nobody would see \
                 (restart it to open the file that is there now)",
                self.path.display()
            )))
        };
        match file_id(&self.path) {
            Ok(id) if id == self.file => Ok(()),
            Ok(_) => gone("replaced by another file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone("deleted"),
            // Unreadable directory and the like: the open file still works.
            Err(_) => Ok(()),
        }
    }

    /// The file this queue lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, on the writer thread, in the next group
    /// commit (writer.rs); returns once that transaction has committed.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.writer.call(f).await
    }

    /// Returns when some process has written the queue's WAL since the
    /// last call (never, without inotify).
    async fn written(&self) {
        match &self.wal {
            Some(wal) => wal.written().await,
            None => std::future::pending().await,
        }
    }

    /// Leases up to `max` ready payloads, oldest first.
    fn try_claim(conn: &Connection, visibility: i64, max: usize) -> rusqlite::Result<Vec<Delivery>> {
        let now = now_ms();
        // Cached: the claim and ack statements run once per message, and
        // parsing them each time cost a third of a no-op's time.
        let mut claimed = conn
            .prepare_cached(
                "UPDATE queue SET lease_until = ?2, deliveries = deliveries + 1
                 WHERE id IN (SELECT id FROM queue
                              WHERE not_before <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
                              ORDER BY not_before, id LIMIT ?3)
                 RETURNING id, payload, attempt, deliveries, not_before",
            )?
            .query_map(params![now, now + visibility, max as i64], |row| {
                let d = Delivery {
                    tag: row.get::<_, i64>(0)? as u64,
                    payload: row.get(1)?,
                    attempt: row.get(2)?,
                    deliveries: row.get(3)?,
                };
                Ok((row.get::<_, i64>(4)?, d))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        // RETURNING comes in no promised order.
        claimed.sort_by_key(|(not_before, d)| (*not_before, d.tag));
        Ok(claimed.into_iter().map(|(_, d)| d).collect())
    }
}

#[async_trait]
impl WorkQueue for SqliteQueue {
    async fn enqueue(&self, payload: &[u8]) -> Result<()> {
        let payload = payload.to_vec();
        self.with_conn(move |c| {
            c.prepare_cached("INSERT INTO queue (payload, not_before) VALUES (?1, ?2)")?
                .execute(params![payload, now_ms()])
        })
        .await?;
        self.notify.notify_waiters();
        Ok(())
    }

    async fn claim(&self, wait: Duration) -> Result<Option<Delivery>> {
        Ok(self.claim_many(1, wait).await?.pop())
    }

    async fn claim_many(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        self.check_file()?;
        let deadline = tokio::time::Instant::now() + wait;
        let (visibility, max) = (ms(self.options.visibility_timeout), max.max(1));
        loop {
            // Register interest before looking, so an enqueue that lands
            // between the look and the wait still wakes us. (The inotify
            // queue keeps writes that happen meanwhile by itself.)
            let notified = self.notify.notified();
            let claimed = self.with_conn(move |c| Self::try_claim(c, visibility, max)).await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(claimed);
            }
            let nap = self.options.poll_interval.min(deadline - now);
            tokio::select! {
                _ = notified => {}
                _ = self.written() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    fn lease_renewal(&self) -> Option<Duration> {
        // Three renewals per lease: one late renewal never loses it.
        Some((self.options.visibility_timeout / 3).max(Duration::from_millis(100)))
    }

    async fn keep_alive(&self, d: &Delivery) -> Result<()> {
        let (id, n, a) = (d.tag as i64, d.deliveries, d.attempt);
        let until = now_ms() + ms(self.options.visibility_timeout);
        self.with_conn(move |c| {
            c.prepare_cached("UPDATE queue SET lease_until = ?3 WHERE id = ?1 AND deliveries = ?2 AND attempt = ?4")?
                .execute(params![id, n, until, a])
        })
        .await?;
        Ok(())
    }

    async fn ack(&self, d: &Delivery) -> Result<()> {
        let (id, n, a) = (d.tag as i64, d.deliveries, d.attempt);
        self.with_conn(move |c| {
            let n = c
                .prepare_cached("DELETE FROM queue WHERE id = ?1 AND deliveries = ?2 AND attempt = ?3")?
                .execute(params![id, n, a])?;
            crate::reclaim::some(c)?;
            Ok(n)
        })
        .await?;
        Ok(())
    }

    async fn retry(&self, d: &Delivery, delay: Duration, reason: &str) -> Result<()> {
        let (id, n, a, reason) = (d.tag as i64, d.deliveries, d.attempt, reason.to_owned());
        let not_before = now_ms() + ms(delay);
        // The next attempt starts its delivery count again: the worker's
        // max_deliveries is about handouts that never finished, and this
        // one did (it failed, and said so).
        self.with_conn(move |c| {
            c.execute(
                "UPDATE queue SET attempt = attempt + 1, deliveries = 0, not_before = ?3, lease_until = NULL,
                                  last_error = ?4
                 WHERE id = ?1 AND deliveries = ?2 AND attempt = ?5",
                params![id, n, not_before, reason, a],
            )
        })
        .await?;
        Ok(())
    }

    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<()> {
        let (id, n, a, reason) = (d.tag as i64, d.deliveries, d.attempt, reason.to_owned());
        // The call runs in its own savepoint (writer.rs), so the row moves
        // as one: it is never in both tables or neither.
        self.with_conn(move |c| {
            let moved = c.execute(
                "INSERT INTO dead_letters (payload, reason, attempt, dead_at)
                 SELECT payload, ?3, attempt, ?4 FROM queue WHERE id = ?1 AND deliveries = ?2 AND attempt = ?5",
                params![id, n, reason, now_ms(), a],
            )?;
            if moved == 1 {
                c.execute("DELETE FROM queue WHERE id = ?1", params![id])?;
                crate::reclaim::some(c)?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn release(&self, d: &Delivery) -> Result<()> {
        let (id, n, a) = (d.tag as i64, d.deliveries, d.attempt);
        self.with_conn(move |c| {
            c.execute(
                "UPDATE queue SET lease_until = NULL WHERE id = ?1 AND deliveries = ?2 AND attempt = ?3",
                params![id, n, a],
            )
        })
        .await?;
        self.notify.notify_waiters();
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth> {
        self.with_conn(|c| {
            let now = now_ms();
            // In flight and delayed are seeks on small ranges; ready is the
            // rest of a plain count(*), which walks the smallest index
            // without reading rows: milliseconds at a 500k backlog.
            c.prepare_cached(
                "SELECT
                   (SELECT count(*) FROM queue),
                   (SELECT count(*) FROM queue WHERE lease_until > ?1),
                   (SELECT count(*) FROM queue WHERE not_before > ?1 AND (lease_until IS NULL OR lease_until <= ?1)),
                   (SELECT count(*) FROM dead_letters)",
            )?
            .query_row(params![now], |r| {
                let [total, in_flight, delayed, dead] = [0, 1, 2, 3].map(|i| r.get::<_, i64>(i).map(|n| n as u64));
                let (in_flight, delayed) = (in_flight?, delayed?);
                Ok(QueueDepth { ready: total?.saturating_sub(in_flight + delayed), in_flight, delayed, dead: dead? })
            })
        })
        .await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(move |c| {
            let mut stmt = c.prepare(&format!("{DEAD_LETTER_ROW} ORDER BY id LIMIT ?1"))?;
            let rows = stmt.query_map(params![limit], dead_letter_row)?;
            rows.collect()
        })
        .await
    }

    async fn find_dead_letter(&self, id: u64) -> Result<Option<DeadLetter>> {
        let id = id as i64;
        self.with_conn(move |c| {
            c.query_row(&format!("{DEAD_LETTER_ROW} WHERE id = ?1"), params![id], dead_letter_row).optional()
        })
        .await
    }

    async fn replay(&self, id: u64) -> Result<bool> {
        let id = id as i64;
        let replayed = self
            .with_conn(move |c| {
                let moved = c.execute(
                    "INSERT INTO queue (payload, not_before) SELECT payload, ?2 FROM dead_letters WHERE id = ?1",
                    params![id, now_ms()],
                )?;
                c.execute("DELETE FROM dead_letters WHERE id = ?1", params![id])?;
                Ok(moved == 1)
            })
            .await?;
        self.notify.notify_waiters();
        Ok(replayed)
    }

    async fn purge_dead_letters(&self) -> Result<u64> {
        self.with_conn(|c| c.execute("DELETE FROM dead_letters", []).map(|n| n as u64)).await
    }

    async fn prune_dead_letters(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        let (before, limit) = (before.timestamp_millis(), i64::try_from(limit).unwrap_or(i64::MAX));
        self.with_conn(move |c| {
            // The dead_at index: a short walk from the oldest.
            c.execute(
                "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE dead_at < ?1 LIMIT ?2)",
                params![before, limit],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn prunable_dead_letters(&self, before: DateTime<Utc>) -> Result<u64> {
        let before = before.timestamp_millis();
        self.with_conn(move |c| {
            c.query_row("SELECT COUNT(*) FROM dead_letters WHERE dead_at < ?1", [before], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
        })
        .await
    }
}

fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// The columns [`dead_letter_row`] reads.
const DEAD_LETTER_ROW: &str = "SELECT id, payload, reason, attempt, dead_at FROM dead_letters";

fn dead_letter_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: r.get::<_, i64>(0)? as u64,
        payload: r.get(1)?,
        reason: r.get(2)?,
        attempt: r.get(3)?,
        dead_at: Utc.timestamp_millis_opt(r.get(4)?).single().unwrap_or_default(),
    })
}
