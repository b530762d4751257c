//! Concurrency-group locks on PostgreSQL that survive a database restart.
//!
//! A session-level advisory lock alone is released by the server when the
//! holder's session ends, which is what should happen when the holder dies,
//! but a PostgreSQL restart ends every session while the holder's playbook
//! is still running: the next waiter would then take the lock and run
//! beside it. So the lock is two things:
//!
//! * a **lease row** in `relflow_group_locks`, the truth of who holds the
//!   group: the holder's id, its session (`pg_backend_pid()`) and the
//!   server's start time, and an expiry the holder pushes forward every
//!   [`RENEW_EVERY`]. Claiming the row is one atomic upsert that succeeds
//!   only if the row is free: deleted, expired, or left by a session that
//!   is gone from a server that has not restarted since (the holder died,
//!   so its group is free at once, as before);
//! * a session-level **advisory lock**, only the queue in front of the row:
//!   waiters block on it instead of polling, and the first in line polls
//!   the row until the holder lets go.
//!
//! After a restart the row outlives every session, and the server's start
//! time in it no longer matches: nobody may take it until it expires
//! ([`LEASE`]) or its holder, reconnected, renews it under its new session
//! (within [`RENEW_EVERY`] of the database being back). A holder cut off
//! from the database for longer than [`LEASE`] can lose its group; it says
//! so in the log.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio_postgres::Client;

use crate::postgres::{connect, pg};
use crate::{lock_key, LockGuard, Result, StoreError};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relflow_group_locks (
    name         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    server_start TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
";

/// How long a lease lasts without a renewal.
const LEASE: Duration = Duration::from_secs(60);
/// How often the holder renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often the first waiter looks at the row, and how soon a waiter or
/// holder tries again after losing the database.
const RETRY_EVERY: Duration = Duration::from_millis(250);

/// How many times a holder tries to delete its row (about 30 s).
const RELEASE_ATTEMPTS: u32 = 120;

const CLAIM: &str = "
INSERT INTO relflow_group_locks AS l (name, holder, pid, server_start, expires_at)
VALUES ($1, $2, pg_backend_pid(), pg_postmaster_start_time(), now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE
   SET holder = EXCLUDED.holder, pid = EXCLUDED.pid, server_start = EXCLUDED.server_start,
       expires_at = EXCLUDED.expires_at
 WHERE l.expires_at < now()
    OR (l.server_start = pg_postmaster_start_time()
        AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.pid))
RETURNING holder";

const RENEW: &str = "
UPDATE relflow_group_locks
   SET pid = pg_backend_pid(), server_start = pg_postmaster_start_time(),
       expires_at = now() + make_interval(secs => $3)
 WHERE name = $1 AND holder = $2";

/// Waits until the group `name` is free, then holds it until the guard is
/// dropped. Losing the database while waiting (a restart) is waited out,
/// not returned: the run has not started, and the group is still wanted.
pub(crate) async fn lock(url: &str, name: &str) -> Result<LockGuard> {
    let holder = uuid::Uuid::new_v4().to_string();
    loop {
        match try_lock(url, name, &holder).await {
            Ok(client) => {
                let (release, released) = oneshot::channel();
                tokio::spawn(renew(url.to_owned(), name.to_owned(), holder, client, released));
                return Ok(LockGuard::new(Lease { _release: release }));
            }
            Err(e) if e.transient => {
                tracing::warn!(group = name, "cannot take the concurrency-group lock yet, retrying: {}", e.error);
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(e) => return Err(e.error),
        }
    }
}

/// A store error, and whether it is the database going away (worth
/// waiting out) rather than something trying again cannot fix.
struct LockError {
    error: StoreError,
    transient: bool,
}

impl From<tokio_postgres::Error> for LockError {
    fn from(e: tokio_postgres::Error) -> Self {
        // No server error code: the connection broke. 08: connection
        // exceptions; 57P: shutdown, crash recovery, starting up.
        let transient =
            e.code().is_none_or(|c| c.code().starts_with("08") || c.code().starts_with("57P")) || e.is_closed();
        LockError { error: pg(e), transient }
    }
}

/// Queues on the advisory lock, then claims the row; the client is the
/// holder's session.
async fn try_lock(url: &str, name: &str, holder: &str) -> std::result::Result<Client, LockError> {
    let client = connect(url).await.map_err(|error| LockError { error, transient: true })?;
    let key = i64::from_be_bytes(lock_key(name)[..8].try_into().unwrap_or_default());
    client.execute("SELECT pg_advisory_lock($1)", &[&key]).await?;
    while client.query_opt(CLAIM, &[&name, &holder, &LEASE.as_secs_f64()]).await?.is_none() {
        tokio::time::sleep(RETRY_EVERY).await;
    }
    Ok(client)
}

/// Pushes the lease forward until `release` fires (or is dropped),
/// reconnecting (and moving the lease to the new session) when the database
/// went away; then deletes the row and closes the session, which lets the
/// next waiter in.
async fn renew(url: String, name: String, holder: String, mut client: Client, mut release: oneshot::Receiver<()>) {
    loop {
        let pause = if client.is_closed() { RETRY_EVERY } else { RENEW_EVERY };
        tokio::select! {
            _ = &mut release => break,
            _ = tokio::time::sleep(pause) => {}
        }
        if client.is_closed() {
            match connect(&url).await {
                Ok(c) => client = c,
                Err(e) => {
                    tracing::warn!(group = %name, "cannot renew the concurrency-group lock yet: {e}");
                    continue;
                }
            }
        }
        match client.execute(RENEW, &[&name, &holder, &LEASE.as_secs_f64()]).await {
            Ok(1) => {}
            Ok(_) => tracing::error!(
                group = %name,
                "lost the concurrency-group lock: the database was out of reach for longer than its {LEASE:?} \
                 lease, so another run of the group may overlap this one"
            ),
            Err(e) => tracing::warn!(group = %name, "cannot renew the concurrency-group lock yet: {}", pg(e)),
        }
    }
    release_row(&url, client, &name, &holder).await;
}

/// Deletes the row, reconnecting for a while if the database went away: a
/// row left behind after a restart would hold the group until it expires.
/// If this does not land at all, the row is left by a session that is gone,
/// which frees it too (or its expiry does, after a restart).
async fn release_row(url: &str, mut client: Client, name: &str, holder: &str) {
    let delete = "DELETE FROM relflow_group_locks WHERE name = $1 AND holder = $2";
    for _ in 0..RELEASE_ATTEMPTS {
        if client.is_closed() {
            tokio::time::sleep(RETRY_EVERY).await;
            match connect(url).await {
                Ok(c) => client = c,
                Err(_) => continue,
            }
        }
        match client.execute(delete, &[&name, &holder]).await {
            Ok(_) => return,
            Err(e) => tracing::warn!(group = %name, "cannot release the concurrency-group lock yet: {}", pg(e)),
        }
    }
    tracing::warn!(group = %name, "gave up releasing the concurrency-group lock; it frees itself within {LEASE:?}");
}

/// What the [`LockGuard`] holds: dropping it tells the renewal task to give
/// the row back. (If the process exits first, its session goes with it,
/// which frees the row too.)
struct Lease {
    _release: oneshot::Sender<()>,
}
