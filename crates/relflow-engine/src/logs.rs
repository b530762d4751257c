//! Live logs of running runs: the worker tees a running playbook's output
//! into one file per run, and `relflow serve` streams it. Once the run is
//! recorded the store holds the log, and the file goes.
//!
//! This type is the whole interface between the two: neither side builds
//! the file names itself.

use std::path::{Path, PathBuf};

/// `data_dir/logs/<run id>.log` for every run in progress on this host.
#[derive(Debug, Clone)]
pub struct RunLogs {
    dir: PathBuf,
}

impl RunLogs {
    /// The live logs under `data_dir`.
    pub fn new(data_dir: &Path) -> RunLogs {
        RunLogs { dir: data_dir.join("logs") }
    }

    /// Creates the directory. Without it runs still run and are recorded,
    /// they just cannot be followed live.
    pub fn create_dir(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)
    }

    /// Where run `run_id`'s output is teed while it runs.
    pub fn path(&self, run_id: &str) -> PathBuf {
        self.dir.join(format!("{run_id}.log"))
    }

    /// Opens the live log of a running run, if this host has one.
    pub async fn open(&self, run_id: &str) -> Option<tokio::fs::File> {
        tokio::fs::File::open(self.path(run_id)).await.ok()
    }

    /// Everything written so far, if this host has the live log.
    pub async fn read(&self, run_id: &str) -> Option<String> {
        let bytes = tokio::fs::read(self.path(run_id)).await.ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The run is recorded (the store has the log): drop the live copy.
    pub fn finished(&self, run_id: &str) {
        let _ = std::fs::remove_file(self.path(run_id));
    }
}
