//! Shared test helpers: a real SQLite work queue in a temp dir, the fedmsg
//! test CA, the project venv's Python (fedmsg, pyzmq, fedora-messaging).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use relflow_core::config::FedmsgConfig;
use relflow_core::Message;
use relflow_fedmsg::Verifier;
use relflow_ingest::{Dedupe, Event, Sink};
use relflow_queue::{SqliteQueue, SqliteQueueOptions, WorkQueue};
use tokio::sync::broadcast;

pub use relflow_testkit::fixtures_dir as fixtures;

/// Upper bound for waiting on something that should happen (never asserted on).
pub const PATIENCE: Duration = Duration::from_secs(90);

pub fn keys() -> PathBuf {
    fixtures().join("fedmsg-crypto/keys")
}

/// The test CA + CRL, as a `[fedmsg]` section would give them.
pub fn fedmsg_config() -> FedmsgConfig {
    FedmsgConfig { ca_cert: keys().join("ca.crt"), crl: Some(keys().join("crl.pem")), ..Default::default() }
}

/// The project venv's Python, with the real bus clients installed by
/// `RELFLOW_TEST_PY=1 scripts/setup.sh` (scripts/test.sh does it).
pub fn python() -> PathBuf {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(py.exists(), "{} is missing: run `RELFLOW_TEST_PY=1 scripts/setup.sh`", py.display());
    py
}

pub fn venv_bin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin").join(name)
}

pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub queue: Arc<SqliteQueue>,
    pub sink: Sink,
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let queue =
            Arc::new(SqliteQueue::open(dir.path().join("relflow.sqlite3"), SqliteQueueOptions::default()).unwrap());
        let sink = sink_at(&dir, queue.clone());
        Harness { dir, queue, sink }
    }

    /// A new sink over the same files: what a restarted bridge sees.
    pub fn restart(&mut self) {
        self.sink = sink_at(&self.dir, self.queue.clone());
    }

    /// Everything on the work queue, taken off it.
    pub async fn drain(&self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(d) = self.queue.claim(Duration::ZERO).await.unwrap() {
            out.push(Message::from_queue_payload(&d.payload, usize::MAX).unwrap());
            self.queue.ack(&d).await.unwrap();
        }
        out
    }
}

fn sink_at(dir: &tempfile::TempDir, queue: Arc<SqliteQueue>) -> Sink {
    let dedupe = Dedupe::open(&dir.path().join("ingest.sqlite3"), Duration::from_secs(3600)).unwrap();
    let verifier = Verifier::from_config(&fedmsg_config()).unwrap();
    Sink::new(queue, dedupe, Some(verifier), relflow_core::DEFAULT_MAX_MESSAGE_BYTES)
}

/// Waits (bounded) for the first event matching `pred`.
pub async fn wait_event(rx: &mut broadcast::Receiver<Event>, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream closed: {e}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}
