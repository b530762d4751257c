//! Group commit for the embedded queue: one thread owns the SQLite
//! connection and runs every queue call that is waiting at the same moment
//! in one transaction.
//!
//! Why: with `synchronous = FULL`, each commit costs an fsync, and that fsync
//! is most of what a claim or an ack costs. A worker with two slots has a
//! claim and an ack in the air at almost every moment; committed one by one
//! they pay two fsyncs, committed together they pay one. Nothing about
//! durability changes: a caller still gets its answer only after the
//! transaction holding its statements has committed, so `enqueue` still
//! returns once the payload is on disk and `ack` once the row is gone.
//!
//! Calls rarely arrive at exactly the same moment, so a busy writer (its
//! last commit just ended) waits up to [`GATHER`] for as many calls as that
//! commit answered: those callers are typically one worker slot's ack and
//! the next claim, each sent right after the previous answer. An idle
//! writer commits at once, so a lone call never waits. (The worker helps by
//! freeing a slot before it settles the delivery; see its `handle`.)
//!
//! Each call runs inside its own savepoint, so one call's error rolls back
//! only that call's statements; the others in the batch still commit. If the
//! commit itself fails, every call in the batch gets that error, and none of
//! their statements took effect.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::file::{Guard, Unwritable, WalBound};
use crate::{QueueError, Result};

/// The most calls one transaction takes; bounds how long the first caller
/// of a busy batch waits for the others.
const MAX_BATCH: usize = 64;

/// How long a busy writer waits for more calls before committing.
const GATHER: Duration = Duration::from_micros(200);
/// Quiet this long, the writer tidies the WAL (file.rs).
const IDLE: Duration = Duration::from_secs(1);
/// "Busy": the previous commit ended less than this long ago.
const GATHER_WHILE_BUSY: Duration = Duration::from_millis(2);

/// A queue call waiting for the writer thread.
trait Call: Send {
    /// Runs the call's statements inside the open transaction; false if
    /// they failed (the caller gets the error, the statements are undone).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, committed: std::result::Result<(), &Failed>);
}

struct Pending<T, F> {
    f: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Call for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        // A panic in one call must not take the writer thread (and with it
        // every later queue call of this process) down.
        let result = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
            Ok(result) => result.map_err(QueueError::from),
            Err(_) => Err(QueueError::Backend("a queue call panicked; its statements were rolled back".into())),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), &Failed>) {
        let answer = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(QueueError::Backend("a queue call was not run".into())),
            (Err(Failed::Commit(e)), _) => Err(QueueError::Backend(format!("queue transaction failed: {e}"))),
            (Err(Failed::Unwritable(e)), _) => Err(QueueError::Unwritable(e.clone())),
        };
        // The caller may have stopped waiting (its task was cancelled); the
        // statements ran anyway, which is what a dropped future means.
        let _ = self.reply.send(answer);
    }
}

/// Why a whole batch failed.
enum Failed {
    Commit(rusqlite::Error),
    /// Not even begun: the files cannot be written (file.rs).
    Unwritable(Unwritable),
}

/// The handle the queue keeps; cheap to clone. The thread stops when the
/// last handle is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    calls: mpsc::Sender<Box<dyn Call>>,
    /// Transactions run so far; lets a test see that batches form.
    #[cfg_attr(not(test), allow(dead_code))]
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Moves `conn`, open on the database at `path`, to a new writer thread.
    pub(crate) fn start(conn: Connection, path: &Path) -> std::io::Result<Writer> {
        let (calls, queued) = mpsc::channel::<Box<dyn Call>>();
        let commits = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&commits);
        let files = Files { guard: Guard::new(path), wal: WalBound::new(path) };
        std::thread::Builder::new().name("relflow-queue".into()).spawn(move || serve(conn, files, queued, counted))?;
        Ok(Writer { calls, commits })
    }

    /// Runs `f` on the connection within the next batch, and returns its
    /// result once that batch has committed.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let stopped = || QueueError::Backend("the queue's writer thread has stopped".into());
        self.calls.send(Box::new(Pending { f: Some(f), result: None, reply })).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The writer thread: batch whatever is waiting, commit, answer, repeat,
/// until every handle is dropped.
fn serve(mut conn: Connection, mut files: Files, queued: mpsc::Receiver<Box<dyn Call>>, commits: Arc<AtomicU64>) {
    let mut last_commit: Option<Instant> = None;
    let mut last_batch = 0;
    loop {
        let first = match queued.recv_timeout(IDLE) {
            Ok(call) => call,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                files.wal.idle(&conn);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        // Busy (the last commit just ended): the callers it answered are
        // about to send their next calls (a worker's ack and its next
        // claim). Wait a moment for as many as it had, so they share this
        // transaction instead of paying for their own. Idle, commit at once.
        let busy = last_commit.is_some_and(|t| t.elapsed() < GATHER_WHILE_BUSY);
        let gather_until = Instant::now() + GATHER;
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(call) => batch.push(call),
                Err(mpsc::TryRecvError::Empty) if busy && batch.len() < last_batch && Instant::now() < gather_until => {
                    std::thread::yield_now()
                }
                Err(_) => break,
            }
        }
        last_batch = batch.len();
        commit_batch(&mut conn, &mut files, batch);
        last_commit = Some(Instant::now());
        commits.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the writer thread keeps about the database's files.
struct Files {
    guard: Guard,
    wal: WalBound,
}

fn commit_batch(conn: &mut Connection, files: &mut Files, mut batch: Vec<Box<dyn Call>>) {
    // Before SQLite touches its mapped -shm: once that cannot be written,
    // touching it is a SIGBUS (file.rs).
    if let Err(e) = files.guard.check() {
        return fail_all(batch, &Failed::Unwritable(e));
    }
    // IMMEDIATE: take the write lock up front (waiting up to the busy
    // timeout for other processes), so no statement inside can hit BUSY.
    let mut all_ran = true;
    let committed = conn.transaction_with_behavior(TransactionBehavior::Immediate).and_then(|mut tx| {
        for call in &mut batch {
            let sp = tx.savepoint()?;
            if call.run(&sp) {
                sp.commit()?;
            } else {
                // Undo this call's statements only; it keeps its error.
                all_ran = false;
                sp.finish()?;
            }
        }
        tx.commit()
    });
    // A SIGBUS caught meanwhile: not even a commit is to be trusted.
    if let Err(e) = files.guard.confirm() {
        return fail_all(batch, &Failed::Unwritable(e));
    }
    // A call's own error counts: a full disk often fails the statement
    // that needed the space, not the commit.
    files.wal.after(conn, committed.is_ok() && all_ran);
    let failed = committed.err().map(Failed::Commit);
    for call in batch {
        call.finish(failed.as_ref().map_or(Ok(()), Err));
    }
}

fn fail_all(batch: Vec<Box<dyn Call>>, failed: &Failed) {
    for call in batch {
        call.finish(Err(failed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &tempfile::TempDir) -> (Writer, std::path::PathBuf) {
        let path = dir.path().join("w.sqlite3");
        let conn = crate::sqlite::open_connection(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)").unwrap();
        (Writer::start(conn, &path).unwrap(), path)
    }

    fn values(path: &std::path::Path) -> Vec<i64> {
        let c = Connection::open(path).unwrap();
        let mut stmt = c.prepare("SELECT v FROM t ORDER BY v").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    }

    /// Many calls in the air at once (so batches form): each is answered,
    /// and a failing one undoes only its own statements.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_call_rolls_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (w, path) = writer(&dir);
        let mut calls = Vec::new();
        for i in 0..200i64 {
            let w = w.clone();
            calls.push(tokio::spawn(async move {
                w.call(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [i * 10])?;
                    if i % 50 == 7 {
                        // Its own value again violates UNIQUE whatever order the
                        // calls run in: the whole call, first insert too, must vanish.
                        c.execute("INSERT INTO t (v) VALUES (?1)", [i * 10])?;
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let mut failed = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            match call.await.unwrap() {
                Ok(v) => assert_eq!(v, i as i64),
                Err(_) => failed.push(i as i64),
            }
        }
        assert_eq!(failed, vec![7, 57, 107, 157]);
        let commits = w.commits.load(Ordering::Relaxed);
        assert!(commits < 200, "200 concurrent calls took {commits} transactions: no batching");
        let expected: Vec<i64> = (0..200).filter(|i| !failed.contains(i)).map(|i| i * 10).collect();
        assert_eq!(values(&path), expected);
    }

    #[tokio::test]
    async fn a_panicking_call_is_an_error_and_the_writer_lives_on() {
        let dir = tempfile::tempdir().unwrap();
        let (w, path) = writer(&dir);
        let err = w
            .call(|c| -> rusqlite::Result<()> {
                c.execute("INSERT INTO t (v) VALUES (1)", [])?;
                panic!("boom")
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        w.call(|c| c.execute("INSERT INTO t (v) VALUES (2)", [])).await.unwrap();
        assert_eq!(values(&path), vec![2]);
    }
}
