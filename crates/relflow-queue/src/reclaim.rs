//! Giving disk space back as the queue drains. SQLite keeps the pages of
//! deleted rows for reuse, so a file that once held a 500k backlog stayed
//! that size forever; with `auto_vacuum = INCREMENTAL` each ack hands a few
//! free pages back to the file system (at the next WAL checkpoint).

use rusqlite::Connection;

/// Free pages returned per ack or dead letter: bounded work per call, and a
/// drained backlog still shrinks back within a few more acks than it held.
const PAGES_PER_CALL: u32 = 16;

/// Turns incremental vacuum on. A new file takes it at once; an existing
/// file needs one full `VACUUM` (a rewrite: seconds for a large file, done
/// once). If another process holds the file busy, it is tried again at the
/// next start, and nothing else changes meanwhile.
pub(crate) fn enable(conn: &Connection) -> rusqlite::Result<()> {
    const INCREMENTAL: i64 = 2;
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == INCREMENTAL {
        return Ok(());
    }
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode != INCREMENTAL {
        if let Err(e) = conn.execute_batch("VACUUM") {
            tracing::warn!("cannot switch the queue file to incremental vacuum yet (tried again next start): {e}");
        }
    }
    Ok(())
}

/// Returns up to [`PAGES_PER_CALL`] free pages (nothing to do, nearly free).
pub(crate) fn some(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!("PRAGMA incremental_vacuum({PAGES_PER_CALL})"))
}
