//! fedmsg sequence numbers: seeing the messages ZeroMQ lost.
//!
//! fedmsg is fire-and-forget: what a publisher sends while the bridge is
//! down, or reconnecting, is gone. But every fedmsg envelope carries `i`,
//! the publishing context's message counter (1, 2, 3, ... for the life of
//! the process), so a jump in `i` is a count of lost messages. A *producer*
//! is one such counter: the endpoint it was received from plus who signed
//! it (the certificate's CN, else the envelope's `username`), since one
//! endpoint (a relay) can carry many publishers.
//!
//! * `i` = last + 1: in order.
//! * `i` > last + 1: a **gap** of `i - last - 1` messages.
//! * `i` <= last: the producer **restarted** (its counter began again); the
//!   `i - 1` messages the new process sent before this one were missed.
//!
//! Only messages the sink queued are observed (duplicates say nothing new,
//! and a rejected message's `i` cannot be trusted). The last `i` per
//! producer and every gap are kept in `data_dir/ingest.sqlite3` beside the
//! dedupe window, so a bridge that was itself down sees the gap its absence
//! made, and `relflow status` (another process) can report them. Each gap
//! keeps the timestamps around it: the window `relflow backfill` fetches.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("sequence store {path}: {source}")]
pub struct GapsError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

/// What one message's `i` says.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "seen", rename_all = "snake_case")]
pub enum Seen {
    /// The first message from this producer: nothing to compare with.
    First,
    InOrder,
    /// Messages were lost (a restart with `i` > 1 is one too, after 0).
    Gap(Gap),
    /// The producer's counter began again.
    Restart {
        previous: u64,
        now: u64,
    },
}

/// A run of lost messages: `i` strictly between `after` and `before`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub producer: String,
    pub after: u64,
    pub before: u64,
    pub missing: u64,
    /// Envelope timestamps (Unix seconds) of the messages around the gap,
    /// when they had one: the window a backfill fetches.
    pub after_ts: Option<f64>,
    pub before_ts: Option<f64>,
    /// When relflow noticed (Unix seconds).
    pub detected_at: i64,
}

/// One producer's counters since relflow first saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Producer {
    pub producer: String,
    pub last_i: u64,
    pub gaps: u64,
    pub missing: u64,
    pub restarts: u64,
}

/// Totals over all producers, for status lines and `/readyz`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub producers: u64,
    pub gaps: u64,
    pub missing: u64,
    pub restarts: u64,
}

/// The persisted sequence state.
pub struct Gaps {
    path: String,
    conn: Mutex<Connection>,
}

impl Gaps {
    /// Opens (or creates) the store at `path` (the sink's `ingest.sqlite3`).
    pub fn open(path: &Path) -> Result<Gaps, GapsError> {
        let err = |source| GapsError { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA busy_timeout = 10000;
             CREATE TABLE IF NOT EXISTS fedmsg_producer (
                 producer TEXT PRIMARY KEY,
                 last_i INTEGER NOT NULL,
                 last_ts REAL,
                 gaps INTEGER NOT NULL DEFAULT 0,
                 missing INTEGER NOT NULL DEFAULT 0,
                 restarts INTEGER NOT NULL DEFAULT 0
             );
             CREATE TABLE IF NOT EXISTS fedmsg_gap (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 producer TEXT NOT NULL,
                 after_i INTEGER NOT NULL,
                 before_i INTEGER NOT NULL,
                 missing INTEGER NOT NULL,
                 after_ts REAL,
                 before_ts REAL,
                 detected_at INTEGER NOT NULL
             );",
        )
        .map_err(err)?;
        Ok(Gaps { path: path.display().to_string(), conn: Mutex::new(conn) })
    }

    /// Records message `i` (sent at `ts`) from `producer` and says what it means.
    pub fn observe(&self, producer: &str, i: u64, ts: Option<f64>) -> Result<Seen, GapsError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let last: Option<(u64, Option<f64>)> = conn
            .query_row("SELECT last_i, last_ts FROM fedmsg_producer WHERE producer = ?1", [producer], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        let seen = classify(producer, last, i, ts);
        let (gaps, missing, restarts) = match &seen {
            Seen::Gap(g) => (1, g.missing, u64::from(g.after == 0)),
            Seen::Restart { .. } => (0, 0, 1),
            Seen::First | Seen::InOrder => (0, 0, 0),
        };
        conn.execute(
            "INSERT INTO fedmsg_producer (producer, last_i, last_ts, gaps, missing, restarts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (producer) DO UPDATE SET last_i = ?2, last_ts = ?3,
                 gaps = gaps + ?4, missing = missing + ?5, restarts = restarts + ?6",
            params![producer, i, ts, gaps, missing, restarts],
        )
        .map_err(|e| self.err(e))?;
        if let Seen::Gap(g) = &seen {
            conn.execute(
                "INSERT INTO fedmsg_gap (producer, after_i, before_i, missing, after_ts, before_ts, detected_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![g.producer, g.after, g.before, g.missing, g.after_ts, g.before_ts, g.detected_at],
            )
            .map_err(|e| self.err(e))?;
        }
        Ok(seen)
    }

    /// Every producer seen, by name.
    pub fn producers(&self) -> Result<Vec<Producer>, GapsError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn
            .prepare("SELECT producer, last_i, gaps, missing, restarts FROM fedmsg_producer ORDER BY producer")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| {
            Ok(Producer {
                producer: r.get(0)?,
                last_i: r.get(1)?,
                gaps: r.get(2)?,
                missing: r.get(3)?,
                restarts: r.get(4)?,
            })
        });
        rows.and_then(|rows| rows.collect()).map_err(|e| self.err(e))
    }

    /// The last `limit` gaps, oldest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<Gap>, GapsError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn
            .prepare(
                "SELECT producer, after_i, before_i, missing, after_ts, before_ts, detected_at FROM
                 (SELECT * FROM fedmsg_gap ORDER BY id DESC LIMIT ?1) ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(Gap {
                producer: r.get(0)?,
                after: r.get(1)?,
                before: r.get(2)?,
                missing: r.get(3)?,
                after_ts: r.get(4)?,
                before_ts: r.get(5)?,
                detected_at: r.get(6)?,
            })
        });
        rows.and_then(|rows| rows.collect()).map_err(|e| self.err(e))
    }

    /// Sums over [`producers`](Gaps::producers).
    pub fn totals(&self) -> Result<Totals, GapsError> {
        let all = self.producers()?;
        Ok(Totals {
            producers: all.len() as u64,
            gaps: all.iter().map(|p| p.gaps).sum(),
            missing: all.iter().map(|p| p.missing).sum(),
            restarts: all.iter().map(|p| p.restarts).sum(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> GapsError {
        GapsError { path: self.path.clone(), source }
    }
}

/// The rules of the module docs, given the producer's last `i` (and its timestamp).
fn classify(producer: &str, last: Option<(u64, Option<f64>)>, i: u64, ts: Option<f64>) -> Seen {
    let gap = |after: u64, after_ts: Option<f64>| {
        Seen::Gap(Gap {
            producer: producer.to_owned(),
            after,
            before: i,
            missing: i - after - 1,
            after_ts,
            before_ts: ts,
            detected_at: now(),
        })
    };
    match last {
        None => Seen::First,
        Some((last, _)) if i <= last && i > 1 => gap(0, None),
        Some((last, _)) if i <= last => Seen::Restart { previous: last, now: i },
        Some((last, _)) if i == last + 1 => Seen::InOrder,
        Some((last, last_ts)) => gap(last, last_ts),
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The producer and `i` of a fedmsg envelope, if it has an `i`: `signer`
/// is the verified certificate CN when the source checked one.
pub fn sequence_of(endpoint: &str, signer: Option<&str>, envelope: &serde_json::Value) -> Option<(String, u64)> {
    let i = envelope.get("i")?.as_u64()?;
    let who = signer.or_else(|| envelope.get("username").and_then(|u| u.as_str())).unwrap_or("unknown");
    Some((format!("{endpoint} {who}"), i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_are_gaps_and_resets_are_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let gaps = Gaps::open(&dir.path().join("ingest.sqlite3")).unwrap();
        assert_eq!(gaps.observe("p", 5, Some(1.0)).unwrap(), Seen::First);
        assert_eq!(gaps.observe("p", 6, Some(2.0)).unwrap(), Seen::InOrder);
        match gaps.observe("p", 10, Some(3.0)).unwrap() {
            Seen::Gap(g) => assert_eq!((g.after, g.before, g.missing, g.after_ts), (6, 10, 3, Some(2.0))),
            other => panic!("expected a gap, got {other:?}"),
        }
        assert_eq!(gaps.observe("p", 1, None).unwrap(), Seen::Restart { previous: 10, now: 1 });
        // A restart we saw only from its fourth message: three were lost.
        match gaps.observe("p", 4, None).unwrap() {
            Seen::Gap(g) => assert_eq!((g.after, g.missing), (1, 2)),
            other => panic!("expected a gap, got {other:?}"),
        }
        match gaps.observe("p", 3, None).unwrap() {
            Seen::Gap(g) => assert_eq!((g.after, g.before, g.missing), (0, 3, 2)),
            other => panic!("a reset seen at i = 3 is a restart with 2 lost, got {other:?}"),
        }
        assert_eq!(gaps.observe("other", 1, None).unwrap(), Seen::First);
        let reopened = Gaps::open(&dir.path().join("ingest.sqlite3")).unwrap();
        let totals = reopened.totals().unwrap();
        assert_eq!(totals, Totals { producers: 2, gaps: 3, missing: 7, restarts: 2 });
        assert_eq!(reopened.recent(2).unwrap().iter().map(|g| g.missing).collect::<Vec<_>>(), [2, 2]);
    }
}
