//! `relflow bridge` as a process: config -> sources -> embedded work queue,
//! and a clean stop on SIGTERM.

use std::process::Command;
use std::time::Duration;

use relflow_queue::{SqliteQueue, SqliteQueueOptions, WorkQueue};

#[tokio::test(flavor = "multi_thread")]
async fn bridge_serves_configured_webhooks_into_the_queue_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("relflow.toml");
    std::fs::write(
        &config,
        format!(
            "playbooks_dir = \"playbooks\"\ndata_dir = \"data\"\n[ingest]\nlisten = \"127.0.0.1:{port}\"\n\
             [[source]]\ntype = \"webhook\"\nname = \"ci\"\nsecret = \"k\"\ntopic = \"org.example.ci.done\"\n"
        ),
    )
    .unwrap();
    let mut bridge = Command::new(env!("CARGO_BIN_EXE_relflow"))
        .arg("--config")
        .arg(&config)
        .arg("bridge")
        .env_remove("RELFLOW_CONFIG")
        .spawn()
        .unwrap();
    let body = r#"{"pipeline": 7, "status": "success"}"#;
    let sig = relflow_ingest::webhook::sign(b"k", body.as_bytes());
    let url = format!("http://127.0.0.1:{port}/hooks/ci");
    let mut status = String::new();
    for _ in 0..300 {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--data-binary", body])
            .arg("-H")
            .arg(format!("X-Hub-Signature-256: {sig}"))
            .arg(&url)
            .output()
            .unwrap();
        status = String::from_utf8_lossy(&out.stdout).into_owned();
        if status != "000" {
            break; // the bridge is listening
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "202");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(bridge.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(bridge.wait().unwrap().success(), "SIGTERM is a clean stop");

    let queue = SqliteQueue::open(dir.path().join("data/relflow.sqlite3"), SqliteQueueOptions::default()).unwrap();
    let d = queue.claim(Duration::ZERO).await.unwrap().expect("the webhook's message is on the queue");
    let m = relflow_core::Message::from_queue_payload(&d.payload, usize::MAX).unwrap();
    assert_eq!((m.topic.as_str(), m.source.as_str()), ("org.example.ci.done", "webhook:ci"));
    assert_eq!(m.body["pipeline"], 7);
}
