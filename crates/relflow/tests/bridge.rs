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

/// `[backfill] on_start`: a starting bridge fetches the recent past from
/// Datagrepper, for its fedmsg source's topics, into the work queue.
/// "Datagrepper" is Python's `http.server` serving one search page (it
/// ignores the query; the window itself is tested in relflow-ingest).
#[test]
fn a_starting_bridge_backfills_the_last_minutes_from_datagrepper() {
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (dg_port, zmq_port) = (free_port(), free_port());
    let pungi = "org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json";
    let envelope: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture(pungi)).unwrap()).unwrap();
    let env = Env::new(&format!(
        "[[source]]\ntype = \"fedmsg\"\nname = \"hub\"\nendpoints = [\"tcp://127.0.0.1:{zmq_port}\"]\n\
         topics = [\"org.fedoraproject.prod.pungi.\"]\nrequire_signature = false\n\n\
         [backfill]\nurl = \"http://127.0.0.1:{dg_port}\"\non_start = \"10m\"\n"
    ));
    std::fs::create_dir_all(env.path("dg/v2")).unwrap();
    let page = serde_json::json!({"raw_messages": [envelope], "count": 1, "page": 1, "pages": 1, "total": 1});
    std::fs::write(env.path("dg/v2/search"), page.to_string()).unwrap();
    let mut datagrepper = Command::new(relflow_testkit::venv_python())
        .args(["-m", "http.server", &dg_port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(env.path("dg"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    relflow_testkit::wait_until(Duration::from_secs(30), "the test Datagrepper", || {
        std::net::TcpStream::connect(("127.0.0.1", dg_port)).is_ok()
    });

    let log = env.path("bridge.log");
    let mut bridge = env
        .command(&["bridge"])
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    relflow_testkit::wait_until(Duration::from_secs(60), "the on_start backfill", || {
        said().contains("on_start backfill:")
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(bridge.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(bridge.wait().unwrap().success(), "SIGTERM is a clean stop");
    datagrepper.kill().unwrap();
    datagrepper.wait().unwrap();
    assert!(said().contains("on_start backfill: fetched 1, queued 1 new, 0 already seen"), "{}", said());
    assert_eq!(env.drain(), "drained: 1 message(s): 1 done, 0 dead-lettered\n");
}

const TOTAL: usize = 200;

/// Message ids that have a run, with how many runs each.
fn runs_per_message(env: &Env) -> std::collections::BTreeMap<String, usize> {
    let mut count = std::collections::BTreeMap::new();
    for r in env.runs() {
        *count.entry(r["message_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    count
}

/// Never miss a fedmsg message, with the real processes: the real Python
/// fedmsg publisher sends 200 signed messages while `relflow bridge` is
/// killed (SIGKILL) and started again twice, and a `relflow worker` runs
/// what arrives. `relflow status` reports the two gaps with their sizes,
/// `relflow backfill` from a test Datagrepper (relflow_testkit::Datagrepper:
/// the real one cannot run here, see relflow-ingest's gaps_backfill.rs)
/// queues exactly the missed messages, and every message has one run.
#[test]
fn a_killed_bridge_leaves_counted_gaps_and_backfill_runs_exactly_the_missed_messages() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let keys = relflow_testkit::fixtures_dir().join("fedmsg-crypto/keys");
    let env = Env::with_tables(
        "",
        &format!(
            "[fedmsg]\nca_cert = {:?}\ncrl = {:?}\n\n[[source]]\ntype = \"fedmsg\"\nname = \"bus\"\n\
             endpoints = [{endpoint:?}]\ntopics = [\"org.fedoraproject.test.\"]\nrequire_signature = true\n",
            keys.join("ca.crt"),
            keys.join("crl.pem")
        ),
        "[[rule]]\nname = \"seq\"\ntopic = \"org.fedoraproject.test.relflow.seq\"\nplaybook = \"seq.yml\"\n",
    );
    env.playbook("seq.yml", &play("    - debug: msg=\"{{ msg.n }}\"\n"));
    let _worker = common::Proc(env.spawn_worker(&[]));
    let mut publisher = relflow_testkit::FedmsgPublisher::start(&endpoint);
    let mut sent: Vec<String> = Vec::new();
    let id = |e: &str| serde_json::from_str::<serde_json::Value>(e).unwrap()["msg_id"].as_str().unwrap().to_owned();
    let limit = Duration::from_secs(120);

    for round in 0..3 {
        let mut bridge = common::Proc(env.command(&["bridge"]).stdin(std::process::Stdio::null()).spawn().unwrap());
        // ZeroMQ drops what is sent before the subscription reaches the
        // publisher: probe until one arrives (the lost probes are missed too).
        let runs_before = runs_per_message(&env).len();
        relflow_testkit::wait_until(limit, "the bridge to subscribe", || {
            sent.extend(publisher.send(1));
            std::thread::sleep(Duration::from_millis(300));
            runs_per_message(&env).len() > runs_before
        });
        let batch = publisher.send(if round < 2 { 50 } else { TOTAL - sent.len() });
        sent.extend(batch.iter().cloned());
        // Killed only once every message it took has run: by then the
        // bridge has long recorded them (see relflow_ingest::dedupe).
        relflow_testkit::wait_until(limit, "the batch's runs", || {
            let runs = runs_per_message(&env);
            batch.iter().all(|e| runs.contains_key(&id(e)))
        });
        let pid = Pid::from_raw(bridge.0.id() as i32);
        if round < 2 {
            kill(pid, Signal::SIGKILL).unwrap();
            bridge.0.wait().unwrap();
            sent.extend(publisher.send(25)); // while no bridge runs: lost
        } else {
            kill(pid, Signal::SIGTERM).unwrap();
            assert!(bridge.0.wait().unwrap().success());
        }
    }
    assert_eq!(sent.len(), TOTAL);
    let got = runs_per_message(&env);
    let missed = TOTAL - got.len();
    assert!(missed >= 50, "each kill loses at least the 25 sent meanwhile: {missed}");

    // The gaps, by fedmsg's `i`, between the messages that arrived.
    let seen: Vec<u64> = sent
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap())
        .filter(|e| got.contains_key(e["msg_id"].as_str().unwrap()))
        .map(|e| e["i"].as_u64().unwrap())
        .collect();
    let expected: Vec<(u64, u64, u64)> =
        seen.windows(2).filter(|w| w[1] > w[0] + 1).map(|w| (w[0], w[1], w[1] - w[0] - 1)).collect();
    assert_eq!(expected.len(), 2, "one gap per kill");
    let status = env.json(&["status"]);
    let fedmsg = &status["fedmsg_sequence"];
    let reported: Vec<(u64, u64, u64)> = fedmsg["recent_gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["after"].as_u64().unwrap(), g["before"].as_u64().unwrap(), g["missing"].as_u64().unwrap()))
        .collect();
    assert_eq!(reported, expected, "{status}");
    assert_eq!(fedmsg["totals"]["gaps"], 2);
    assert_eq!(fedmsg["totals"]["restarts"], 0, "the producer never restarted");

    let datagrepper = relflow_testkit::Datagrepper::serve(env.dir.path(), &sent);
    let report =
        env.json(&["backfill", "--since", "1h", "--until", "2100-01-01T00:00:00Z", "--url", datagrepper.url()]);
    let counts = (&report["fetched"], &report["queued"], &report["already_seen"], &report["rejected"]);
    assert_eq!(counts, (&TOTAL.into(), &missed.into(), &got.len().into(), &0.into()), "{report}");
    relflow_testkit::wait_until(limit, "every message to run", || runs_per_message(&env).len() == TOTAL);
    let runs = runs_per_message(&env);
    let ids: std::collections::BTreeSet<String> = sent.iter().map(|e| id(e)).collect();
    assert_eq!(runs.keys().cloned().collect::<std::collections::BTreeSet<_>>(), ids);
    assert!(runs.values().all(|&n| n == 1), "one run per message: {runs:?}");
}
