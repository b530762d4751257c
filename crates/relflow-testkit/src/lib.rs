//! What relflow's tests share: throwaway services, paths to fixtures and
//! tools, and a polling helper. A dev-dependency only; nothing shipped
//! links it.
//!
//! Tests run against the real services on the machine (RabbitMQ on
//! 127.0.0.1:5672 as guest/guest, PostgreSQL on 127.0.0.1:5432 as
//! `postgres` with trust auth) and must leave them as they found them:
//!
//! * [`Vhost`] and [`PgDatabase`] give a test its own corner of the shared
//!   broker and database server, and delete it when dropped.
//! * [`PgServer`] is a whole PostgreSQL server owned by the test (initdb in
//!   a temp dir, own port and socket dir), for the tests that restart it.
//! * [`RabbitNode`] is a whole RabbitMQ node owned by the test (own node
//!   name, ports, data, cookie, epmd), for the tests that need to stop,
//!   kill or restart the broker, cluster it, or talk TLS to it. Nothing a
//!   test does to it can reach the shared broker.
//! * [`FedmsgPublisher`] and [`Datagrepper`] are the real Python fedmsg
//!   publisher and a test Datagrepper, as child processes.
//! * [`RemoteHost`] is a host to SSH into: a network namespace with its own
//!   sshd, automation users with keys, sudoers drop-ins and root-owned
//!   files, all removed on drop (see its module docs before using it).
//! * [`Tmpfs`] and [`Immutable`] are file-system faults: a small disk to
//!   fill, files even root cannot write; undone on drop.
//!
//! Everything here panics with a message that says what to do when a
//! service or tool is missing: a test cannot go on without it anyway.

#![deny(missing_docs)]

mod fedmsg;
mod fs;
mod node;
mod paths;
mod pg_server;
mod postgres;
mod rabbitmq;
mod remote;
mod tls;
mod wait;

pub use fedmsg::{Datagrepper, FedmsgPublisher};
pub use fs::{wal_size, Immutable, Tmpfs};
pub use node::{RabbitBuilder, RabbitCluster, RabbitNode};
pub use paths::{ansible_playbook, fixture, fixtures_dir, flr_binary, repo_root, venv_python};
pub use pg_server::PgServer;
pub use postgres::PgDatabase;
pub use rabbitmq::{rabbitmqctl, QueueStat, Vhost};
pub use remote::{AutomationUser, RemoteHost, RemoteHostBuilder};
pub use tls::TlsFiles;
pub use wait::{wait_for, wait_until};

/// A suffix no other live test has: process id, a per-process counter, and
/// the clock (so a new run does not collide with what a killed earlier run
/// left behind). Letters, digits and `_` only, so it fits any name.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed), nanos % 1_000_000)
}

/// Runs `cmd`, panicking with its stderr unless it exits 0; returns stdout.
fn run(cmd: &mut std::process::Command, what: &str) -> String {
    String::from_utf8_lossy(&run_ok(cmd, what).stdout).into_owned()
}

/// Runs `cmd` to the end; panics, showing `what`, the exit status and both
/// streams, unless it exits 0.
pub fn run_ok(cmd: &mut std::process::Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
