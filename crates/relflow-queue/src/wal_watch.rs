//! Cross-process wake-up for the embedded queue: inotify on its WAL file.
//!
//! `relflow publish`, the bridge and other workers write the queue from
//! other processes, and SQLite has no way to tell a waiting reader. Polling
//! costs CPU on every idle worker and adds half a poll interval of latency
//! to every message. Every commit in WAL mode writes the `-wal` file, so an
//! inotify watch on it wakes a waiting claim right after any process
//! commits, and costs nothing while the queue is quiet. Spurious wake-ups
//! (this process's own commits, a checkpoint) only mean one more look.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

pub(crate) struct WalWatch {
    fd: AsyncFd<Fd>,
}

/// `AsyncFd` wants `AsRawFd`; nix's `Inotify` offers `AsFd`.
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl WalWatch {
    /// Watches `<db>-wal`; `None` if inotify is unavailable (limits reached,
    /// no tokio runtime here), in which case claims fall back to polling.
    pub(crate) fn new(db: &Path) -> Option<WalWatch> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        inotify.add_watch(Path::new(&wal), AddWatchFlags::IN_MODIFY).ok()?;
        // AsyncFd needs a runtime's reactor; a queue opened outside one polls.
        tokio::runtime::Handle::try_current().ok()?;
        // SAFETY: `Fd` owns the inotify descriptor for as long as the
        // AsyncFd lives and always returns that same descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(inotify), Interest::READABLE) }.ok()?;
        Some(WalWatch { fd })
    }

    /// Returns once the WAL was written since the last call. Several
    /// waiters may wake for one write; each then looks once more.
    pub(crate) async fn written(&self) {
        let Ok(mut ready) = self.fd.readable().await else {
            return std::future::pending().await;
        };
        // Drain the events: only "something happened" matters.
        while ready.get_inner().0.read_events().is_ok() {}
        ready.clear_ready();
    }
}
