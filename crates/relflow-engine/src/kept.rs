//! A finished run's outcome, kept in a file until the run store has it.
//!
//! Between `ansible-playbook` exiting and the store committing how the run
//! ended, the result existed only in memory: a worker that had to stop
//! there (its SQLite files unwritable, a SIGKILL) lost it, and the
//! restarted worker saw the run still `running` and ran the playbook again.
//! Now the outcome goes to `<data_dir>/finished/<run id>.json` first
//! (written whole, then renamed, then synced), is removed once the store
//! has it, and a starting worker records whatever it finds there before it
//! takes work. The redelivered message then finds its run finished.

use std::io::Write;
use std::path::{Path, PathBuf};

use relflow_store::{NewEvent, RunOutcome, RunStatus, RunStore};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// The directory of kept outcomes.
pub(crate) struct Kept {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    run_id: String,
    outcome: RunOutcome,
    events: Vec<NewEvent>,
}

impl Kept {
    pub(crate) fn new(data_dir: &Path) -> Kept {
        Kept { dir: data_dir.join("finished") }
    }

    /// Writes the outcome durably (off the async threads: it syncs); an
    /// error means it is only in memory.
    pub(crate) async fn keep(&self, run_id: &str, outcome: &RunOutcome, events: &[NewEvent]) -> std::io::Result<()> {
        let entry = Entry { run_id: run_id.to_owned(), outcome: outcome.clone(), events: events.to_vec() };
        let (dir, path) = (self.dir.clone(), self.path(run_id));
        tokio::task::spawn_blocking(move || write_synced(&dir, &path, &entry)).await.map_err(std::io::Error::other)?
    }

    /// The store has it now.
    pub(crate) fn forget(&self, run_id: &str) {
        forget(&self.path(run_id));
    }

    /// Records every kept outcome whose run the store still has as running
    /// (another worker may be recording its own right now). An error is
    /// the store's: the caller stops, and the files wait for the next start.
    pub(crate) async fn record_all(&self, store: &dyn RunStore) -> relflow_store::Result<()> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return Ok(()) };
        for entry in dir.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let kept: Entry = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(kept) => kept,
                Err(e) => {
                    warn!(file = %path.display(), "ignoring an unreadable kept outcome: {e}");
                    continue;
                }
            };
            let running = store.get(&kept.run_id).await?.is_some_and(|r| r.record.status == RunStatus::Running);
            if running {
                store.finish_announced(&kept.run_id, &kept.outcome, &kept.events).await?;
                info!(run = %kept.run_id, status = %kept.outcome.status, "recorded how a run ended, kept by a worker that stopped");
            }
            // By the file's own name: what is inside is only data.
            forget(&path);
        }
        Ok(())
    }

    fn path(&self, run_id: &str) -> PathBuf {
        self.dir.join(format!("{run_id}.json"))
    }
}

fn write_synced(dir: &Path, path: &Path, entry: &Entry) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(entry)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn forget(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        warn!(file = %path.display(), "cannot remove a kept outcome (it is recorded; harmless): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relflow_store::{NewRun, SqliteStore, TaskCounts};

    fn run(id: &str) -> NewRun {
        NewRun {
            id: id.into(),
            message_id: format!("m-{id}"),
            topic: "a.b".into(),
            rule: "r".into(),
            playbook: "p.yml".into(),
            attempt: 1,
            worker: "host:1".into(),
            message: serde_json::json!({}),
        }
    }

    fn outcome(status: RunStatus) -> RunOutcome {
        RunOutcome {
            status,
            exit_code: Some(0),
            counts: TaskCounts { ok: 2, ..Default::default() },
            tasks: serde_json::json!([]),
            log: "PLAY RECAP".into(),
            error: None,
        }
    }

    /// A kept outcome of a run still `running` is recorded; one of a run
    /// the store already finished (its worker recorded it and then died
    /// before removing the file) does not overwrite it; both files go.
    #[tokio::test]
    async fn kept_outcomes_are_recorded_once_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("relflow.sqlite3")).unwrap();
        let kept = Kept::new(dir.path());
        for id in ["lost", "recorded"] {
            store.start(&run(id)).await.unwrap();
        }
        store.finish("recorded", &outcome(RunStatus::Failed)).await.unwrap();
        kept.keep("lost", &outcome(RunStatus::Succeeded), &[]).await.unwrap();
        kept.keep("recorded", &outcome(RunStatus::Succeeded), &[]).await.unwrap();
        std::fs::write(dir.path().join("finished/garbage.json"), "{not json").unwrap();

        kept.record_all(&store).await.unwrap();
        let status = |id: &'static str| {
            let store = store.clone();
            async move { store.get(id).await.unwrap().unwrap().record.status }
        };
        assert_eq!(status("lost").await, RunStatus::Succeeded);
        assert_eq!(status("recorded").await, RunStatus::Failed);
        let left: Vec<_> =
            std::fs::read_dir(dir.path().join("finished")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("garbage.json")], "an unreadable file is left for a human");
    }
}
