//! `relflow serve` runs the bridge in-process: a signed webhook POST to
//! serve's own port becomes a queued message, and serve's worker runs it.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{play, wait_for, Env};

#[test]
fn a_webhook_on_serve_s_port_becomes_a_recorded_run() {
    let env = Env::with_tables(
        "",
        "[[source]]\ntype = \"webhook\"\nname = \"ci\"\nsecret = \"k\"\ntopic = \"org.example.ci.done\"\n",
        "[[rule]]\nname = \"ci-done\"\ntopic = \"org.example.ci.#\"\nwhen = \"msg.status == 'success'\"\nplaybook = \"ci.yml\"\n",
    );
    env.playbook("ci.yml", &play("    - debug: msg=\"pipeline {{ msg.pipeline }}\"\n"));
    let mut serve = env
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(env.path("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(serve.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("relflow serve: listening on ").expect("serve prints its address").to_owned();

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
