//! Each run's private directory, `<work_dir>/runs/<worker pid>-<random>/`
//! (0700), and the sweep that removes the ones a killed worker left behind.
//!
//! Everything a run puts on the worker's disk lives in it, so one removal
//! cleans up all of it:
//!
//! * `vars.yml`: the extra vars (0600; it holds the message);
//! * `events.jsonl`: the callback plugin's per-task results;
//! * `cp/`: SSH ControlPersist sockets (`ANSIBLE_SSH_CONTROL_PATH_DIR`, and
//!   `ANSIBLE_PERSISTENT_CONTROL_PATH_DIR` for persistent connections);
//! * `tmp/`: ansible's local temp dir (`ANSIBLE_LOCAL_TEMP`, cold runs),
//!   where it stages module payloads, message values included.
//!
//! Why a control dir per run: ansible's default, `~/.ansible/cp`, is shared
//! by every run of the user, so concurrent runs to one host used the master
//! connection whichever run came first had opened. The master is a
//! descendant of that run's supervisor, which kills the whole tree when the
//! run ends or its worker dies, and every other run then failed with "Shared
//! connection closed". With one dir per run, a master serves exactly one run
//! and the supervisor's tree kill stays honest: it only ever ends its own run.
//!
//! Who removes the dir: the runner when the run ends ([`RunDir`]'s drop); the
//! run's supervisor when it outlived its worker (see `supervise.rs`); and
//! [`sweep`], on the next start, for dirs whose supervisor is gone too (a
//! SIGKILL of the whole service, a power cut).
//!
//! "Gone" is decided with `flock`, not pids (a pid can be reused; a lock dies
//! with the last process holding it): the runner and the supervisor each
//! hold a shared lock on the dir while they live, and the sweeper removes a
//! dir only if it gets the exclusive lock without waiting. Creating a dir
//! and locking it happen under a shared lock on `runs/.lock`, which the
//! sweeper holds exclusively, so it never sees a dir between its `mkdir` and
//! its lock.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

const VARS: &str = "vars.yml";
const EVENTS: &str = "events.jsonl";
const CONTROL: &str = "cp";
const LOCAL_TMP: &str = "tmp";
/// Serialises creating a run dir against sweeping (see the module docs).
const GUARD: &str = ".lock";
/// A Unix socket path holds at most 107 bytes. Inside the control dir ssh
/// creates `<10 hex digits>` (ansible's hash) plus, while it sets up a
/// master, `.` and 16 random characters: 28 more.
const MAX_CONTROL_DIR: usize = 107 - 28;

/// One run's private directory, locked while it exists, removed on drop.
#[derive(Debug)]
pub(crate) struct RunDir {
    path: PathBuf,
    // Held until after the directory is removed (fields drop after `drop`).
    _lock: Flock<File>,
}

impl RunDir {
    /// Creates and locks a new run dir under `runs`.
    pub fn create(runs: &Path) -> std::io::Result<RunDir> {
        let _guard = lock(&runs.join(GUARD), FlockArg::LockShared)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .rand_bytes(6)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(runs)?
            .keep();
        let run = RunDir { _lock: lock(&dir, FlockArg::LockShared)?, path: dir };
        for sub in [CONTROL, LOCAL_TMP] {
            std::fs::DirBuilder::new().mode(0o700).create(run.path.join(sub))?;
        }
        Ok(run)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the vars file (0600, created new: never an existing file).
    pub fn write_vars(&self, text: &str) -> std::io::Result<PathBuf> {
        let path = self.path.join(VARS);
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        f.write_all(text.as_bytes())?;
        f.flush()?;
        Ok(path)
    }

    /// Removes the vars file as soon as ansible is done with it.
    pub fn remove_vars(&self) {
        let _ = std::fs::remove_file(self.path.join(VARS));
    }

    /// Creates the (empty, 0600) events file the callback plugin appends to.
    pub fn create_events(&self) -> std::io::Result<PathBuf> {
        let path = self.events();
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        Ok(path)
    }

    pub fn events(&self) -> PathBuf {
        self.path.join(EVENTS)
    }

    pub fn control_dir(&self) -> PathBuf {
        self.path.join(CONTROL)
    }

    pub fn local_tmp(&self) -> PathBuf {
        self.path.join(LOCAL_TMP)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != ErrorKind::NotFound {
                tracing::warn!("cannot remove run dir {}: {e}", self.path.display());
            }
        }
    }
}

/// Whether the control dir of a run under `runs` fits a Unix socket path;
/// if not, SSH connection sharing fails in every run, so say so at start.
pub(crate) fn control_dir_fits(runs: &Path) -> bool {
    // `<pid>-` + 6 random characters + `/cp`: a pid has at most 7 digits.
    runs.as_os_str().len() + "/1234567-abcdef/".len() + CONTROL.len() <= MAX_CONTROL_DIR
}

/// Holds a shared lock on an existing run dir (the supervisor's part).
pub(crate) fn hold(dir: &Path) -> std::io::Result<Flock<File>> {
    lock(dir, FlockArg::LockShared)
}

/// Removes every run dir under `runs` that no live process holds, i.e.
/// whose runner and supervisor are both gone. Returns how many it removed.
pub(crate) fn sweep(runs: &Path) -> usize {
    let Ok(_guard) = lock(&runs.join(GUARD), FlockArg::LockExclusive) else { return 0 };
    let Ok(entries) = std::fs::read_dir(runs) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == GUARD || !path.is_dir() {
            continue;
        }
        // Taken without waiting: it fails while anyone holds the dir.
        let Ok(_orphan) = lock(&path, FlockArg::LockExclusiveNonblock) else { continue };
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove the abandoned run dir {}: {e}", path.display()),
        }
    }
    removed
}

/// Opens `path` (a directory, or the guard file, created if missing) and
/// locks it.
fn lock(path: &Path, how: FlockArg) -> std::io::Result<Flock<File>> {
    let file = if path.is_dir() {
        File::open(path)?
    } else {
        OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?
    };
    Flock::lock(file, how).map_err(|(_, errno)| std::io::Error::from(errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let runs = t.path().join("runs");
        std::fs::create_dir(&runs).unwrap();
        (t, runs)
    }

    fn dirs(runs: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(runs)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != GUARD)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_run_dir_is_private_and_removed_on_drop() {
        let (_t, runs) = runs();
        let dir = RunDir::create(&runs).unwrap();
        let name = dir.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("{}-", std::process::id())), "{name}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.control_dir()), 0o700);
        let vars = dir.write_vars("{}").unwrap();
        assert_eq!(mode(&vars), 0o600);
        assert!(dir.write_vars("{}").is_err(), "never overwrites a vars file");
        assert_eq!(mode(&dir.create_events().unwrap()), 0o600);
        drop(dir);
        assert!(dirs(&runs).is_empty());
    }

    #[test]
    fn the_sweep_removes_only_dirs_nobody_holds() {
        let (_t, runs) = runs();
        let live = RunDir::create(&runs).unwrap();
        // A supervisor that outlived its runner still holds its dir.
        let held_path = tempfile::Builder::new().prefix("4241-").tempdir_in(&runs).unwrap().keep();
        let supervisor = hold(&held_path).unwrap();
        let abandoned = tempfile::Builder::new().prefix("4242-").tempdir_in(&runs).unwrap().keep();
        std::fs::write(abandoned.join(VARS), "secret").unwrap();

        assert_eq!(sweep(&runs), 1);
        assert!(!abandoned.exists(), "nobody held it: swept");
        assert!(live.path().exists() && held_path.exists(), "held dirs are left alone");
        drop(supervisor);
        assert_eq!(sweep(&runs), 1, "the supervisor is gone now");
        assert_eq!(dirs(&runs), [live.path().file_name().unwrap().to_string_lossy().into_owned()]);
    }

    #[test]
    fn long_work_dirs_are_flagged_for_ssh() {
        assert!(control_dir_fits(Path::new("/var/lib/relflow/ansible/runs")));
        assert!(!control_dir_fits(&Path::new("/srv").join("x".repeat(80))));
    }
}
