//! Ingest throughput. Run: `cargo bench -p relflow-ingest` (BENCH_SECS, BENCH_MESSAGES).
//!
//! 1. fedmsg signature verifications per second on one core: fresh envelopes
//!    signed with the test key (RSA-1024, like Fedora's), checked against
//!    the test CA and CRL, as a `require_signature` source does.
//! 2. Bridge messages per second end to end: a ZeroMQ PUB (in process,
//!    over TCP on 127.0.0.1) -> ZmqSource -> signature check -> dedupe
//!    (SQLite) -> the embedded SQLite work queue (durable enqueue, fsync).
//!
//! A plain `fn main` (harness = false): no benchmark framework to compile.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relflow_core::config::ingest::FedmsgSource;
use relflow_fedmsg::{FedmsgConfig, Signer, Verifier};
use relflow_ingest::zmq::ZmqSource;
use relflow_ingest::{Dedupe, Outcome, Sink};
use relflow_queue::{SqliteQueue, SqliteQueueOptions};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use zeromq::{Socket, SocketSend, ZmqMessage};

fn keys() -> PathBuf {
    relflow_testkit::fixture("fedmsg-crypto/keys")
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn fedmsg_config() -> FedmsgConfig {
    FedmsgConfig { ca_cert: keys().join("ca.crt"), crl: Some(keys().join("crl.pem")), ..Default::default() }
}

/// `n` distinct signed envelopes (topic, bytes).
fn signed(n: usize) -> Vec<(String, Vec<u8>)> {
    let k = keys();
    let signer = Signer::from_files(
        &k.join("shell-app01.phx2.fedoraproject.org.crt"),
        &k.join("shell-app01.phx2.fedoraproject.org.key"),
    )
    .expect("test key");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    (0..n)
        .map(|i| {
            let topic = "org.fedoraproject.prod.buildsys.tag".to_string();
            let env = json!({
                "topic": topic, "i": i, "msg_id": format!("bench-{now}-{i}"), "timestamp": now, "username": "bench",
                "msg": {"build_id": 2477334 + i, "name": "glibc", "version": "2.39.9000", "release": "27.fc41",
                        "tag": "f41-updates-candidate", "owner": "releng", "instance": "primary"},
            });
            (topic, serde_json::to_vec(&signer.sign_value(&env).unwrap()).unwrap())
        })
        .collect()
}

fn bench_verify(secs: u64) {
    let verifier = Verifier::from_config(&fedmsg_config()).unwrap();
    let messages = signed(64);
    for (_, m) in &messages {
        verifier.verify(m).expect("verifies");
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        for (_, m) in &messages {
            std::hint::black_box(verifier.verify(std::hint::black_box(m)).unwrap());
            n += 1;
        }
    }
    let s = start.elapsed().as_secs_f64();
    let rate = n as f64 / s;
    println!(
        "fedmsg signature verification: {rate:.0} verifications/s on one core ({:.1} us each; RSA-1024 + CA + CRL + routing policy, {n} in {s:.2} s)",
        s * 1e6 / n as f64
    );
    match python_fedmsg_rate(&messages, secs) {
        Ok(py) => println!(
            "Python fedmsg 1.1.7 on the same {} messages: {py:.0} verifications/s; relflow = {:.1}x",
            messages.len(),
            rate / py
        ),
        Err(e) => println!("Python fedmsg side skipped: {e}"),
    }
}

/// The same messages through `fedmsg.crypto.validate` in the project venv
/// (benches/fedmsg_verify.py), for the side-by-side ratio.
fn python_fedmsg_rate(messages: &[(String, Vec<u8>)], secs: u64) -> Result<f64, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("messages.jsonl");
    let lines: Vec<u8> = messages.iter().flat_map(|(_, m)| m.iter().copied().chain([b'\n'])).collect();
    std::fs::write(&file, lines).map_err(|e| e.to_string())?;
    let python = relflow_testkit::repo_root().join(".venv/bin/python");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fedmsg_verify.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .args([keys().join("ca.crt"), keys().join("crl.pem"), file])
        .arg(secs.to_string())
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|e| format!("{e}"))
}

async fn bench_bridge(count: usize) {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(SqliteQueue::open(dir.path().join("relflow.sqlite3"), SqliteQueueOptions::default()).unwrap());
    let dedupe = Dedupe::open(&dir.path().join("ingest.sqlite3"), Duration::from_secs(3600)).unwrap();
    let verifier = Verifier::from_config(&fedmsg_config()).unwrap();
    let sink = Sink::new(queue, dedupe, Some(verifier), relflow_core::DEFAULT_MAX_MESSAGE_BYTES);
    let mut events = sink.events();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut publisher = zeromq::PubSocket::new();
    publisher.bind(&endpoint).await.unwrap();
    let source = ZmqSource::new(FedmsgSource {
        validate: Default::default(),
        name: "bench".into(),
        endpoints: vec![endpoint],
        topics: vec![],
        require_signature: true,
    });
    let shutdown = CancellationToken::new();
    let bridge = relflow_ingest::run(vec![Box::new(source)], sink.clone(), shutdown.clone());

    let mut messages = signed(count + 1);
    // Warm-up: resend the first message until the subscriber is connected.
    let (topic, first) = messages.remove(0);
    let frames = |t: &str, b: &[u8]| {
        let mut m = ZmqMessage::from(t.as_bytes().to_vec());
        m.push_back(b.to_vec().into());
        m
    };
    loop {
        publisher.send(frames(&topic, &first)).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
            Ok(Ok(e)) if e.outcome == Outcome::Queued => break,
            _ => {}
        }
    }
    let base = sink.stats().queued;
    let start = Instant::now();
    // Pace the publisher a little ahead of the bridge so PUB's queue never drops.
    for (i, (t, m)) in messages.iter().enumerate() {
        publisher.send(frames(t, m)).await.unwrap();
        while i as u64 > sink.stats().queued - base + 500 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.stats().queued - base < count as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let s = start.elapsed().as_secs_f64();
    let got = sink.stats().queued - base;
    shutdown.cancel();
    bridge.await.unwrap().unwrap();
    println!(
        "bridge end to end (ZeroMQ -> verify -> dedupe -> durable SQLite enqueue): {:.0} messages/s ({got} of {count} signed messages in {s:.2} s)",
        got as f64 / s
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would too.
    let secs = env_num("BENCH_SECS", 3);
    bench_verify(secs);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(bench_bridge(env_num("BENCH_MESSAGES", 3000) as usize));
}
