//! File-system faults a test owns: a small tmpfs to fill up, and files
//! made immutable. Both need root (the tests run as root); both are undone
//! when dropped, so a failing test leaves no mount and no frozen file.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size mounted on a fresh temp dir: a disk a test can
/// fill without touching anyone else's. Unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `"8m"`).
    pub fn new(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("a temp dir for the tmpfs");
        crate::run(
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir.path()),
            "mount -t tmpfs (the tests need root)",
        );
        Tmpfs { dir }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file of zeros at `name` until the file system is full;
    /// returns its path. Removing it frees the space again.
    pub fn fill(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let path = self.dir.path().join(name);
        let mut f = std::fs::File::create(&path).expect("the filler file");
        let block = vec![0u8; 64 << 10];
        // tmpfs is exact: a failed write means the last block is gone.
        while f.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process the test left running may still hold a file here.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Files made immutable (`chattr +i`): even root can no longer write them,
/// and a write through an existing shared mapping faults. Made mutable
/// again when dropped.
pub struct Immutable {
    files: Vec<PathBuf>,
}

impl Immutable {
    /// `chattr +i` on each of `files` (they must exist, on a file system
    /// that has the flag, such as ext4; tmpfs has it too).
    pub fn new(files: &[PathBuf]) -> Immutable {
        crate::run(Command::new("chattr").arg("+i").args(files), "chattr +i (the tests need root)");
        Immutable { files: files.to_vec() }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.files).status();
    }
}

/// The size of a SQLite database's WAL file (`x.sqlite3-wal` beside
/// `x.sqlite3`), 0 when there is none.
pub fn wal_size(db: &Path) -> u64 {
    std::fs::metadata(db.with_extension("sqlite3-wal")).map_or(0, |m| m.len())
}
