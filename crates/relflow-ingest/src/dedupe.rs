//! "Have we queued this message id recently?", remembered in a small SQLite
//! file in `data_dir`, so a restarted bridge still knows what it queued.
//!
//! The same event reaches relflow more than once in normal operation: two
//! fedmsg relays carry it, an AMQP broker redelivers what a killed bridge had
//! not acked, a webhook sender retries. Each id is queued once per
//! `dedupe_window`. The record is written *after* the work queue confirmed
//! the enqueue: a crash in between can let one duplicate through, never lose a
//! message (and the worker never re-runs a (message id, rule) that already
//! succeeded, so that duplicate is harmless).
//!
//! Each id is remembered with a digest of what it carried, where the caller
//! gives one: a copy with the same id but other content is not the same
//! event (a producer reusing ids), and is reported as a conflict instead of
//! being dropped in silence.
//!
//! Two copies arriving at the same moment (two relays) must not both pass the
//! check before either is recorded, so an id being enqueued is "in flight":
//! a second copy waits until the first is recorded (then it is a duplicate)
//! or failed (then it gets its turn).

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// Delete expired ids every this many records.
const PRUNE_EVERY: u64 = 1000;

#[derive(Debug, thiserror::Error)]
#[error("dedupe store {path}: {source}")]
pub struct DedupeError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

/// The dedupe window, persisted. Cheap to clone.
#[derive(Clone)]
pub struct Dedupe {
    inner: Arc<Inner>,
}

struct Inner {
    path: String,
    conn: Mutex<(Connection, u64)>,
    window: Duration,
    in_flight: Mutex<HashSet<String>>,
}

/// Answer to [`Dedupe::claim`].
pub enum Claim {
    /// Not seen in the window: enqueue it, then [`Ticket::commit`].
    Fresh(Ticket),
    /// Queued already within the window (with the same digest, or where
    /// either has none).
    Seen,
    /// Queued already within the window with a different digest.
    Conflict,
}

/// The right to enqueue one id. Dropping it without [`commit`](Ticket::commit)
/// (the enqueue failed) lets the next copy of the message through.
pub struct Ticket {
    dedupe: Dedupe,
    id: String,
    digest: Option<String>,
    done: bool,
}

impl Dedupe {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, window: Duration) -> Result<Dedupe, DedupeError> {
        let err = |source| DedupeError { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(err)?;
        // WAL + NORMAL: a power cut may forget the last few ids, which costs
        // at most a harmless duplicate (see the module docs), never a message.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 10000;
             CREATE TABLE IF NOT EXISTS ingest_seen (
                 id TEXT PRIMARY KEY,
                 seen_at INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS ingest_seen_at ON ingest_seen (seen_at);",
        )
        .map_err(err)?;
        // Stores made before digests were kept get the column.
        let has_digest: bool = conn
            .query_row("SELECT count(*) FROM pragma_table_info('ingest_seen') WHERE name = 'digest'", [], |r| r.get(0))
            .map_err(err)?;
        if !has_digest {
            conn.execute_batch("ALTER TABLE ingest_seen ADD COLUMN digest TEXT").map_err(err)?;
        }
        Ok(Dedupe {
            inner: Arc::new(Inner {
                path: path.display().to_string(),
                conn: Mutex::new((conn, 0)),
                window,
                in_flight: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Whether `id` (carrying `digest`, if given) may be enqueued now.
    /// Waits while another copy of the same id is being enqueued.
    pub async fn claim(&self, id: &str, digest: Option<&str>) -> Result<Claim, DedupeError> {
        loop {
            {
                let mut in_flight = self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                if !in_flight.contains(id) {
                    match self.seen_digest(id)? {
                        Some(Some(seen)) if digest.is_some_and(|d| d != seen) => return Ok(Claim::Conflict),
                        Some(_) => return Ok(Claim::Seen),
                        None => {}
                    }
                    in_flight.insert(id.to_owned());
                    let ticket = Ticket {
                        dedupe: self.clone(),
                        id: id.to_owned(),
                        digest: digest.map(str::to_owned),
                        done: false,
                    };
                    return Ok(Claim::Fresh(ticket));
                }
            }
            // Rare (two copies within an enqueue's time): poll briefly.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Whether `id` was recorded within the window.
    pub fn seen(&self, id: &str) -> Result<bool, DedupeError> {
        Ok(self.seen_digest(id)?.is_some())
    }

    /// The digest `id` was recorded with, if it was within the window.
    fn seen_digest(&self, id: &str) -> Result<Option<Option<String>>, DedupeError> {
        let guard = self.inner.conn.lock().unwrap_or_else(|e| e.into_inner());
        let row: Option<(i64, Option<String>)> = guard
            .0
            .query_row("SELECT seen_at, digest FROM ingest_seen WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.filter(|(at, _)| *at >= self.cutoff()).map(|(_, digest)| digest))
    }

    /// How many ids are remembered (expired ones included until pruned).
    pub fn len(&self) -> Result<u64, DedupeError> {
        let guard = self.inner.conn.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.query_row("SELECT count(*) FROM ingest_seen", [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    pub fn is_empty(&self) -> Result<bool, DedupeError> {
        Ok(self.len()? == 0)
    }

    /// Records `id` as queued now, without a claim: for a message queued on
    /// purpose (`relflow publish --force`), so later copies dedupe against it.
    pub fn remember(&self, id: &str, digest: Option<&str>) -> Result<(), DedupeError> {
        let mut guard = self.inner.conn.lock().unwrap_or_else(|e| e.into_inner());
        let (conn, count) = &mut *guard;
        conn.execute(
            "INSERT OR REPLACE INTO ingest_seen (id, seen_at, digest) VALUES (?1, ?2, ?3)",
            params![id, now_ms(), digest],
        )
        .map_err(|e| self.err(e))?;
        *count += 1;
        if *count % PRUNE_EVERY == 1 {
            conn.execute("DELETE FROM ingest_seen WHERE seen_at < ?1", [self.cutoff()]).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn cutoff(&self) -> i64 {
        now_ms().saturating_sub(self.inner.window.as_millis().min(i64::MAX as u128) as i64)
    }

    fn err(&self, source: rusqlite::Error) -> DedupeError {
        DedupeError { path: self.inner.path.clone(), source }
    }
}

impl Ticket {
    /// The message is on the work queue: remember its id.
    pub fn commit(mut self) -> Result<(), DedupeError> {
        self.done = true;
        let result = self.dedupe.remember(&self.id, self.digest.as_deref());
        self.release();
        result
    }

    fn release(&self) {
        self.dedupe.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            self.release();
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_id_is_fresh_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedupe.sqlite3");
        let d = Dedupe::open(&path, Duration::from_secs(3600)).unwrap();
        let Claim::Fresh(t) = d.claim("a", None).await.unwrap() else { panic!("first copy must be fresh") };
        t.commit().unwrap();
        assert!(matches!(d.claim("a", None).await.unwrap(), Claim::Seen));
        drop(d);
        let d = Dedupe::open(&path, Duration::from_secs(3600)).unwrap();
        assert!(matches!(d.claim("a", None).await.unwrap(), Claim::Seen), "a restart must still dedupe");
        assert!(matches!(d.claim("b", None).await.unwrap(), Claim::Fresh(_)));
    }

    #[tokio::test]
    async fn a_failed_enqueue_lets_the_next_copy_through() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dedupe::open(&dir.path().join("d.sqlite3"), Duration::from_secs(3600)).unwrap();
        let Claim::Fresh(t) = d.claim("x", None).await.unwrap() else { panic!() };
        drop(t); // enqueue failed
        assert!(matches!(d.claim("x", None).await.unwrap(), Claim::Fresh(_)));
    }

    #[tokio::test]
    async fn a_concurrent_copy_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dedupe::open(&dir.path().join("d.sqlite3"), Duration::from_secs(3600)).unwrap();
        let Claim::Fresh(t) = d.claim("x", None).await.unwrap() else { panic!() };
        let d2 = d.clone();
        let second = tokio::spawn(async move { matches!(d2.claim("x", None).await.unwrap(), Claim::Seen) });
        tokio::task::yield_now().await;
        t.commit().unwrap();
        assert!(second.await.unwrap(), "the second copy is a duplicate once the first is recorded");
    }

    #[tokio::test]
    async fn ids_older_than_the_window_are_fresh_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dedupe::open(&dir.path().join("d.sqlite3"), Duration::ZERO).unwrap();
        let Claim::Fresh(t) = d.claim("x", None).await.unwrap() else { panic!() };
        t.commit().unwrap();
        // A zero window: anything recorded before "now" has expired.
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(d.claim("x", None).await.unwrap(), Claim::Fresh(_)));
    }

    #[tokio::test]
    async fn an_id_reused_for_other_content_is_a_conflict_not_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dedupe::open(&dir.path().join("d.sqlite3"), Duration::from_secs(3600)).unwrap();
        let Claim::Fresh(t) = d.claim("x", Some("aaa")).await.unwrap() else { panic!() };
        t.commit().unwrap();
        assert!(matches!(d.claim("x", Some("aaa")).await.unwrap(), Claim::Seen), "same content: a duplicate");
        assert!(matches!(d.claim("x", Some("bbb")).await.unwrap(), Claim::Conflict));
        assert!(matches!(d.claim("x", None).await.unwrap(), Claim::Seen), "no digest to compare: a duplicate");
    }
}
