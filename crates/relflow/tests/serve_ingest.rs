//! `relflow serve` runs the bridge in-process: a signed webhook POST to
//! serve's own port becomes a queued message, and serve's worker runs it.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{play, wait_for, Env};

/// Starts `relflow serve` on a free port (log in `serve.log`); returns it
/// and its base URL.
fn spawn_serve(env: &Env, extra: &[&str]) -> (std::process::Child, String) {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut serve = env
        .command(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(env.path("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(serve.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("relflow serve: listening on ").expect("serve prints its address").to_owned();
    (serve, base)
}

#[test]
fn a_webhook_on_serve_s_port_becomes_a_recorded_run() {
    let env = Env::with_tables(
        "",
        "[[source]]\ntype = \"webhook\"\nname = \"ci\"\nsecret = \"k\"\ntopic = \"org.example.ci.done\"\n",
        "[[rule]]\nname = \"ci-done\"\ntopic = \"org.example.ci.#\"\nwhen = \"msg.status == 'success'\"\nplaybook = \"ci.yml\"\n",
    );
    env.playbook("ci.yml", &play("    - debug: msg=\"pipeline {{ msg.pipeline }}\"\n"));
    let (mut serve, base) = spawn_serve(&env, &[]);

    let body = r#"{"pipeline": 7, "status": "success"}"#;
    let sig = relflow_ingest::webhook::sign(b"k", body.as_bytes());
    let post = |sig: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--data-binary", body, "-H"])
            .arg(format!("X-Hub-Signature-256: {sig}"))
            .arg(format!("{base}/hooks/ci"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(post("sha256=00"), "401", "a wrong signature is refused");
    assert_eq!(post(&sig), "202");

    let runs = wait_for(Duration::from_secs(120), "the webhook's run to finish", || {
        let runs = env.runs();
        (runs.first().is_some_and(|r| r["status"] == "succeeded")).then_some(runs)
    });
    assert_eq!(runs.len(), 1);
    let log = env.ok(&["runs", "log", runs[0]["id"].as_str().unwrap()]);
    assert!(log.contains("pipeline 7"), "{log}");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(serve.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(
        serve.wait().unwrap().success(),
        "SIGTERM is a clean stop:\n{}",
        std::fs::read_to_string(env.path("serve.log")).unwrap_or_default()
    );
}

/// `/metrics` value of `name` with `labels`, 0 if absent.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    common::serve::value(&common::serve::parse_metrics(text), name, labels)
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").arg("-s").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every way in goes through one intake, so serve's `/metrics` counts them
/// all: a webhook, a real Python fedmsg publisher over ZeroMQ, and
/// `POST /api/publish` (whose second copy is a duplicate, not a second run).
#[test]
fn serve_metrics_count_every_source() {
    let zmq_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("tcp://127.0.0.1:{zmq_port}");
    let env = Env::with_tables(
        "",
        &format!(
            "[http]\ntoken = \"t0ken\"\n\n\
             [[source]]\ntype = \"webhook\"\nname = \"ci\"\nsecret = \"k\"\ntopic = \"org.example.ci.done\"\n\n\
             [[source]]\ntype = \"fedmsg\"\nname = \"bus\"\nendpoints = [\"{endpoint}\"]\nrequire_signature = false\n"
        ),
        "",
    );
    let (mut serve, base) = spawn_serve(&env, &["--no-worker"]);

    let body = r#"{"pipeline": 8}"#;
    let sig = format!("X-Hub-Signature-256: {}", relflow_ingest::webhook::sign(b"k", body.as_bytes()));
    let hook = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--data-binary",
        body,
        "-H",
        &sig,
        &format!("{base}/hooks/ci"),
    ]);
    assert_eq!(hook, "202");
    // A real fedmsg envelope: it carries its msg_id, so a second copy is the same message.
    let envelope = common::fixture("org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json");
    let envelope = format!("@{}", envelope.display());
    let publish = |query: &str| {
        let url = format!("{base}/api/publish{query}");
        curl(&["-w", " %{http_code}", "-H", "Authorization: Bearer t0ken", "--data-binary", &envelope, &url])
    };
    assert!(publish("").ends_with(" 202"), "the first copy is queued");
    let second = publish("");
    assert!(second.contains("\"duplicate\"") && second.ends_with(" 200"), "the second copy is a duplicate: {second}");
    assert!(publish("?force=true").ends_with(" 202"), "force queues it again");

    let repo = common::repo_root();
    let cases = serde_json::json!([{"topic": "hello", "msg": {"n": 2}}]);
    let mut publisher = Command::new(repo.join(".venv/bin/python"))
        .arg(repo.join("crates/relflow-ingest/tests/py/fedmsg_publish.py"))
        .arg(&endpoint)
        .arg(common::fixture("../fedmsg-crypto/keys"))
        .arg(cases.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the Python fedmsg publisher (RELFLOW_TEST_PY=1 scripts/setup.sh installs it)");
    let text = wait_for(Duration::from_secs(60), "the fedmsg message in /metrics", || {
        let text = curl(&[&format!("{base}/metrics")]);
        (metric(&text, "relflow_messages_received_total", &[("source", "fedmsg:bus")]) >= 1.0).then_some(text)
    });
    drop(publisher.stdin.take());
    let _ = publisher.kill();
    let _ = publisher.wait();

    let received = |source| metric(&text, "relflow_messages_received_total", &[("source", source)]);
    assert_eq!(received("fedmsg:bus"), 1.0, "the publisher re-sends one envelope: queued once\n{text}");
    assert_eq!(received("webhook:ci"), 1.0, "{text}");
    assert_eq!(received("http"), 2.0, "the first publish and the forced one\n{text}");
    assert_eq!(metric(&text, "relflow_messages_duplicate_total", &[("source", "http")]), 1.0, "{text}");
    assert_eq!(env.json(&["status"])["queue"]["ready"], 4, "webhook + 2 publishes + fedmsg");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(serve.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(serve.wait().unwrap().success());
}

/// `max_message_bytes` is the limit on the body a webhook sender sent, not
/// on the message relflow wraps around it (topic, id, headers): a body just
/// within the limit is queued and run, one just over it is refused with the
/// body's size.
#[test]
fn the_webhook_size_limit_is_on_the_body_sent() {
    let env = Env::with_tables(
        "",
        "[[source]]\ntype = \"webhook\"\nname = \"ci\"\nsecret = \"k\"\ntopic = \"org.example.ci.done\"\n",
        "[[rule]]\nname = \"ci-done\"\ntopic = \"org.example.ci.#\"\nplaybook = \"ci.yml\"\n",
    );
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace("data_dir = \"data\"\n", "data_dir = \"data\"\nmax_message_bytes = 4096\n"),
    )
    .unwrap();
    env.playbook("ci.yml", &play("    - debug: msg=\"pad {{ msg.pad | length }}\"\n"));
    let (mut serve, base) = spawn_serve(&env, &[]);
    let post = |body: &str| {
        let sig = format!("X-Hub-Signature-256: {}", relflow_ingest::webhook::sign(b"k", body.as_bytes()));
        let url = format!("{base}/hooks/ci");
        // Extra headers the sender adds: they are wrapped into the message too.
        let event = "X-Event-Name: pipeline-finished-with-a-long-header-value";
        curl(&["-w", " %{http_code}", "--data-binary", body, "-H", &sig, "-H", event, &url])
    };
    let body = |len: usize| {
        let pad = "x".repeat(len - r#"{"pad": ""}"#.len());
        format!(r#"{{"pad": "{pad}"}}"#)
    };

    let within = post(&body(4096));
    assert!(within.ends_with(" 202"), "a body of exactly max_message_bytes is queued: {within}");
    let over = post(&body(4097));
    assert!(over.ends_with(" 413"), "{over}");
    assert!(over.contains("body is 4097 bytes, over max_message_bytes (4096)"), "{over}");

    let runs = wait_for(Duration::from_secs(120), "the webhook's run to finish", || {
        let runs = env.runs();
        (runs.first().is_some_and(|r| r["status"] != "running")).then_some(runs)
    });
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    let log = env.ok(&["runs", "log", runs[0]["id"].as_str().unwrap()]);
    assert!(log.contains(&format!("pad {}", 4096 - r#"{"pad": ""}"#.len())), "{log}");
    assert!(env.json(&["dead-letters", "list"]).as_array().unwrap().is_empty());

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(serve.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    serve.wait().unwrap();
}
