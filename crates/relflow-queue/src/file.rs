//! How relflow opens its SQLite files (the embedded queue and the SQLite
//! run store share one), and the two ways such a file can hurt a running
//! process that SQLite does not handle by itself.
//!
//! **An unwritable file kills the process.** In WAL mode SQLite maps the
//! `-shm` file into memory and writes it through that mapping, even for a
//! read. Once the file cannot be written any more (made immutable, a file
//! system remounted read-only after an error), the kernel answers such a
//! write with SIGBUS: the process dies on the spot, nothing logged. chmod
//! does not do it to root; `chattr +i` does. So [`Guard::check`] asks the
//! kernel whether the files can still be written before every transaction
//! and every read (one `access(2)` per file, no I/O), and the caller stops
//! with a clear error instead of touching the mapping. A file frozen while
//! a transaction is in flight slips past that check; [`sigbus`] catches the
//! fault, and [`Guard::confirm`] after each use reports it the same way.
//!
//! **The WAL keeps its high-water mark.** A WAL is reused from the start
//! after a checkpoint, but never shrinks: one that grew while the disk was
//! full (checkpoints fail then, so it only grows) stayed that size for good.
//! `journal_size_limit` truncates it at each reuse, and [`WalBound`] runs a
//! `TRUNCATE` checkpoint once writes work again after an error, whenever
//! the WAL has grown past the limit (readers held it open), and when the
//! writer falls idle with more than [`IDLE_WAL_LIMIT`] in it.

pub mod sigbus;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::AccessFlags;
use rusqlite::Connection;

/// The WAL size (bytes) SQLite truncates back to once it has reused it.
pub const WAL_SIZE_LIMIT: i64 = 16 << 20;

/// Opens a SQLite file the way every relflow component wants it: WAL so
/// readers never block the writer, FULL sync so a committed enqueue survives
/// power loss, a busy timeout so several worker processes can share it, and
/// a bounded WAL.
pub fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    // SQLite's default, said here because the bound above relies on it.
    conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
    Ok(conn)
}

/// A database file, its `-wal` and its `-shm` can no longer be written.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{path} cannot be written ({errno}): SQLite writes it through a memory mapping, which would kill \
     this process, so it stops instead (make the file writable again, then restart it)"
)]
pub struct Unwritable {
    pub path: String,
    pub errno: nix::errno::Errno,
}

/// Checks that a database's files can still be written.
#[derive(Debug, Clone)]
pub struct Guard {
    files: [PathBuf; 3],
}

impl Guard {
    pub fn new(db: &Path) -> Guard {
        let with = |suffix: &str| {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            PathBuf::from(p)
        };
        Guard { files: [with("-shm"), with("-wal"), db.to_path_buf()] }
    }

    /// `Err` if any of the files exists and cannot be written. A missing
    /// file is fine here (SQLite creates the `-wal` and `-shm` as needed;
    /// a deleted database is the queue's "gone" check).
    pub fn check(&self) -> Result<(), Unwritable> {
        // The -shm exists once SQLite has used the database; from then on
        // a SIGBUS on it may be survived (sigbus.rs). Looked at each time:
        // a replaced file is another inode.
        if let Ok(meta) = std::fs::metadata(&self.files[0]) {
            sigbus::watch(&meta);
        }
        match self.unwritable() {
            Some(e) => Err(e),
            None => self.confirm(),
        }
    }

    /// Call after each use of the database: `Err` if a SIGBUS was caught
    /// meanwhile ([`sigbus`]). What SQLite did then is not to be trusted,
    /// even if it said it committed, and this process must stop.
    pub fn confirm(&self) -> Result<(), Unwritable> {
        if !sigbus::caught() {
            return Ok(());
        }
        let shm = || Unwritable { path: self.files[0].display().to_string(), errno: nix::errno::Errno::EIO };
        Err(self.unwritable().unwrap_or_else(shm))
    }

    fn unwritable(&self) -> Option<Unwritable> {
        self.files.iter().find_map(|f| match nix::unistd::access(f, AccessFlags::W_OK) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => None,
            Err(errno) => Some(Unwritable { path: f.display().to_string(), errno }),
        })
    }
}

/// An idle writer empties a WAL bigger than this.
pub const IDLE_WAL_LIMIT: u64 = 1 << 20;

/// How often an oversized WAL is checked for, at most.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Keeps the WAL of one writer connection bounded (see the module docs).
#[derive(Debug)]
pub struct WalBound {
    wal: PathBuf,
    /// A write failed since the last successful `TRUNCATE` checkpoint.
    failed: bool,
    /// Something was committed since the last [`WalBound::idle`].
    wrote: bool,
    last_look: Instant,
}

impl WalBound {
    pub fn new(db: &Path) -> WalBound {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        WalBound { wal: PathBuf::from(wal), failed: false, wrote: false, last_look: Instant::now() }
    }

    /// Call after each write transaction, with whether it committed.
    pub fn after(&mut self, conn: &Connection, committed: bool) {
        if !committed {
            self.failed = true;
            return;
        }
        self.wrote = true;
        let due = self.failed || self.last_look.elapsed() >= LOOK_EVERY && self.oversized();
        if !due {
            return;
        }
        self.last_look = Instant::now();
        match truncate(conn) {
            Ok(true) => self.failed = false,
            // Readers still in the WAL: the next commit tries again.
            Ok(false) => {}
            Err(e) => tracing::warn!("cannot checkpoint {}: {e}", self.wal.display()),
        }
    }

    /// Call when the writer has had nothing to do for a while: a WAL left
    /// big by a burst (or a drained backlog) goes back to nothing.
    pub fn idle(&mut self, conn: &Connection) {
        if !std::mem::take(&mut self.wrote) || self.size() <= IDLE_WAL_LIMIT {
            return;
        }
        match truncate(conn) {
            Ok(true) => self.failed = false,
            // Readers still in the WAL: try at the next idle moment.
            Ok(false) => self.wrote = true,
            Err(e) => tracing::warn!("cannot checkpoint {}: {e}", self.wal.display()),
        }
    }

    fn oversized(&self) -> bool {
        self.size() > WAL_SIZE_LIMIT as u64
    }

    fn size(&self) -> u64 {
        std::fs::metadata(&self.wal).map_or(0, |m| m.len())
    }
}

/// A `TRUNCATE` checkpoint that does not wait for readers (the writer
/// thread must not stall): true if the WAL was emptied.
fn truncate(conn: &Connection) -> rusqlite::Result<bool> {
    conn.busy_timeout(Duration::ZERO)?;
    let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(busy? == 0)
}
