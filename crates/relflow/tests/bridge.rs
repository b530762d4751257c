//! `relflow bridge` as a process: config -> sources -> embedded work queue,
//! and a clean stop on SIGTERM; a fedora-messaging source's durable queue
//! keeps what is published while the bridge is down.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{fixture, play, Env};

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

/// fedora-messaging #208: a consumer on an auto-delete queue silently loses
/// what is published while it is down. relflow's AMQP source declares a
/// durable, named queue, so 50 messages published with the real
/// `fedora-messaging publish` while no bridge runs all become runs.
#[test]
fn messages_published_while_the_bridge_is_down_all_run_once_it_is_back() {
    let vhost = relflow_testkit::Vhost::new("bridge-down");
    let topic = "org.fedoraproject.prod.buildsys.rpm.sign";
    let env = Env::new(&format!(
        "[[source]]\ntype = \"amqp\"\nname = \"fm\"\nurl = {url:?}\nbindings = [\"org.fedoraproject.#\"]\n\n\
         [[rule]]\nname = \"signed\"\ntopic = {topic:?}\nplaybook = \"signed.yml\"\n",
        url = vhost.url()
    ));
    env.playbook("signed.yml", &play("    - debug: msg=\"{{ msg.build.name }}\"\n"));
    let upstream = "relflow-bridge.fm";
    let bridge = |until: &dyn Fn() -> bool, what: &str| {
        let mut child = env.command(&["bridge"]).stdin(std::process::Stdio::null()).spawn().unwrap();
        relflow_testkit::wait_until(Duration::from_secs(120), what, until);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        assert!(child.wait().unwrap().success(), "SIGTERM is a clean stop");
    };
    let depth = || vhost.queues().into_iter().find(|q| q.name == upstream).map(|q| q.ready + q.unacked);
    // The first start declares the durable queue and its bindings.
    bridge(&|| depth().is_some(), "the bridge to declare its queue");

    let sample: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(&format!("amqp/{topic}.json"))).unwrap()).unwrap();
    let lines: Vec<String> = (0..50)
        .map(|n| {
            let mut m = sample.clone();
            m["id"] = format!("relflow-down-{n}").into();
            m.to_string()
        })
        .collect();
    vhost.fedora_messaging_publish(env.path("").as_path(), &lines);
    // The broker holds them while no bridge runs.
    relflow_testkit::wait_until(Duration::from_secs(60), "50 messages upstream", || depth() == Some(50));

    bridge(&|| depth() == Some(0), "the bridge to take all 50");
    assert_eq!(env.drain(), "drained: 50 message(s): 50 done, 0 dead-lettered\n");
    let runs = env.runs();
    let ids: std::collections::BTreeSet<&str> = runs.iter().map(|r| r["message_id"].as_str().unwrap()).collect();
    assert_eq!((runs.len(), ids.len()), (50, 50), "one run per message");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"));
}
