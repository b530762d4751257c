//! Stateful rules end to end: `coalesce` and `join` with real worker
//! processes (SIGKILLed mid-window), real ansible-playbook, on the embedded
//! queue with SQLite and on RabbitMQ with PostgreSQL.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use common::{play, Env, Shared};
use relflow_testkit::wait_until;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(120);

/// A playbook that writes what it got (`msgs`, `msg`) to `<out>/<run id>.json`.
fn recorder(env: &Env, name: &str) {
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    env.playbook(
        name,
        &play(&format!(
            "    - copy:\n        dest: \"{}/{{{{ relflow.run_id }}}}.json\"\n        \
             content: \"{{{{ {{'playbook': '{name}', 'msgs': msgs, 'msg': msg}} | to_json }}}}\"\n",
            out.display()
        )),
    );
}

/// What the recorder playbooks wrote, one value per run.
fn recorded(env: &Env) -> Vec<Value> {
    let Ok(dir) = std::fs::read_dir(env.path("out")) else { return Vec::new() };
    dir.flatten().map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap()).collect()
}

/// Writes one fedmsg envelope per body (derived from the real buildsys.tag
/// fixture) and returns the file names.
fn tag_messages(dir: &Path, tag: &str, n: usize) -> Vec<String> {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture("org.fedoraproject.prod.buildsys.tag--signed.json")).unwrap(),
    )
    .unwrap();
    (0..n)
        .map(|i| {
            let mut body = fixture["msg"].clone();
            body["tag"] = json!(tag);
            body["name"] = json!(format!("{tag}-pkg-{i}"));
            let envelope = json!({"msg_id": format!("2026-{tag}-{i}"), "topic": fixture["topic"],
                                  "timestamp": 1_764_000_000 + i, "msg": body});
            let path = dir.join(format!("{tag}-{i}.json"));
            std::fs::write(&path, envelope.to_string()).unwrap();
            path.display().to_string()
        })
        .collect()
}

fn publish_files(env: &Env, files: &[String]) {
    for chunk in files.chunks(100) {
        let mut args = vec!["publish"];
        args.extend(chunk.iter().map(String::as_str));
        env.ok(&args);
    }
}

fn status(env: &Env) -> Value {
    env.json(&["status"])
}

/// Waits until the queue holds nothing ready or in flight (everything so
/// far is acked, so durably in its batch).
fn wait_queue_empty(env: &Env) {
    wait_until(LONG, "the queue to be empty", || {
        let s = status(env);
        s["queue"]["ready"] == 0 && s["queue"]["in_flight"] == 0 && s["queue"]["delayed"] == 0
    });
}

fn kill(mut worker: Child) {
    worker.kill().unwrap();
    worker.wait().unwrap();
}

fn drain(env: &Env) {
    let mut worker = env.spawn_worker(&["--drain"]);
    let out = worker.wait().unwrap();
    assert!(out.success(), "worker exited with {out}; logs:\n{}", env.worker_logs());
}

const COALESCE_RULES: &str = r#"
[[rule]]
name = "regen-repo"
topic = "org.fedoraproject.*.buildsys.tag"
playbook = "regen.yml"
coalesce = { key = "msg.tag", window = "45s", max = 500 }

[[rule]]
name = "newest-compose"
topic = "org.fedoraproject.*.pungi.compose.status.change"
playbook = "newest.yml"
coalesce = { key = "msg.release", window = "3s", mode = "latest" }
"#;

fn coalesce_bursts(env: Env) {
    recorder(&env, "regen.yml");
    recorder(&env, "newest.yml");
    let msgs = env.path("msgs");
    std::fs::create_dir_all(&msgs).unwrap();
    let (f44, f43) = (tag_messages(&msgs, "f44-build-side", 200), tag_messages(&msgs, "f43-updates", 50));
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for (i, f) in f44.iter().chain(&f43).enumerate() {
        if i % 2 == 0 { &mut first } else { &mut second }.push(f.clone());
    }
    publish_files(&env, &first);
    let worker = env.spawn_worker(&[]);
    wait_queue_empty(&env);
    wait_until(LONG, "one open window per tag", || status(&env)["open_batches"].as_array().unwrap().len() == 2);
    // SIGKILL in the middle of the window; the rest arrive while no worker runs.
    kill(worker);
    publish_files(&env, &second);
    for n in 1..=5 {
        let body = json!({"compose_id": format!("Fedora-Rawhide-2026120{n}.n.0"), "release": "rawhide",
                          "status": "FINISHED"});
        env.publish_body("org.fedoraproject.prod.pungi.compose.status.change", &body);
    }
    drain(&env);

    let runs = env.runs();
    let succeeded: Vec<_> = runs.iter().filter(|r| r["status"] == "succeeded").collect();
    assert_eq!(succeeded.len(), 3, "one run per tag and one per release: {runs:#?}");
    let out = recorded(&env);
    let regen: Vec<_> = out.iter().filter(|o| o["playbook"] == "regen.yml").collect();
    let mut sizes: Vec<usize> = regen.iter().map(|o| o["msgs"].as_array().unwrap().len()).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 200], "{regen:#?}");
    let names: HashSet<&str> =
        regen.iter().flat_map(|o| o["msgs"].as_array().unwrap()).map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 250, "250 messages accounted for, none twice");
    for o in &regen {
        assert_eq!(o["msg"], *o["msgs"].as_array().unwrap().last().unwrap(), "msg is the last one");
    }
    let newest: Vec<_> = out.iter().filter(|o| o["playbook"] == "newest.yml").collect();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0]["msgs"].as_array().unwrap().len(), 1, "latest keeps one: {:#}", newest[0]);
    assert_eq!(newest[0]["msg"]["compose_id"], "Fedora-Rawhide-20261205.n.0");
    assert_eq!(status(&env)["open_batches"], json!([]));
}

const COMPOSE: &str = "org.fedoraproject.prod.pungi.compose.status.change";
const OPENQA: &str = "org.fedoraproject.prod.openqa.job.complete";

const JOIN_RULES: &str = r#"
[[rule]]
name = "compose-tested"
topic = "org.fedoraproject.#"
playbook = "tested.yml"
join = { key = "msg.compose_id", topics = ["org.fedoraproject.*.pungi.compose.status.change", "org.fedoraproject.*.openqa.job.complete"], count = { "org.fedoraproject.*.openqa.job.complete" = 3 }, timeout = "8s", on_timeout = "incomplete.yml" }
"#;

fn publish(env: &Env, topic: &str, compose: &str, n: u32) {
    env.publish_body(topic, &json!({"compose_id": compose, "n": n, "status": "FINISHED"}));
}

fn join_compose_tests(env: Env) {
    recorder(&env, "tested.yml");
    recorder(&env, "incomplete.yml");
    let (a, b) = ("Fedora-Rawhide-20261201.n.0", "Fedora-Rawhide-20261202.n.0");
    // Shuffled: two openQA results, then (after a SIGKILL) the compose and the last result.
    publish(&env, OPENQA, a, 2);
    publish(&env, OPENQA, a, 1);
    let worker = env.spawn_worker(&[]);
    wait_queue_empty(&env);
    kill(worker);
    publish(&env, COMPOSE, a, 0);
    publish(&env, OPENQA, a, 3);
    // The other compose gets only 2 of its 4 before the timeout.
    publish(&env, COMPOSE, b, 0);
    publish(&env, OPENQA, b, 1);
    let worker = env.spawn_worker(&[]);
    // Recorded as succeeded (so settled): RabbitMQ's counts do not show unacked messages.
    let start = std::time::Instant::now();
    while env.runs().iter().filter(|r| r["status"] == "succeeded").count() < 2 {
        assert!(start.elapsed() < LONG, "no joined and timeout runs; logs:\n{}", env.worker_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_queue_empty(&env);
    kill(worker);
    let out = recorded(&env);
    let tested: Vec<_> = out.iter().filter(|o| o["playbook"] == "tested.yml").collect();
    assert_eq!(tested.len(), 1, "{out:#?}");
    assert_eq!(tested[0]["msgs"][OPENQA.replace("prod", "*")].as_array().unwrap().len(), 3, "{:#}", tested[0]);
    assert_eq!(tested[0]["msgs"][COMPOSE.replace("prod", "*")].as_array().unwrap().len(), 1);
    let incomplete: Vec<_> = out.iter().filter(|o| o["playbook"] == "incomplete.yml").collect();
    assert_eq!(incomplete.len(), 1, "on_timeout runs once: {out:#?}");
    assert_eq!(incomplete[0]["msg"]["compose_id"], b);
    assert_eq!(incomplete[0]["msgs"][OPENQA.replace("prod", "*")].as_array().unwrap().len(), 1);

    // A late result for the timed-out compose starts nothing.
    publish(&env, OPENQA, b, 2);
    drain(&env);
    assert_eq!(recorded(&env).len(), 2, "the late message ran nothing");
    assert!(env.worker_logs().contains("late message starts nothing"), "{}", env.worker_logs());
    let runs = env.runs();
    assert_eq!(runs.iter().filter(|r| r["status"] == "succeeded").count(), 2, "{runs:#?}");
}

#[test]
fn coalesce_on_the_embedded_queue() {
    coalesce_bursts(Env::new(COALESCE_RULES));
}

#[test]
fn coalesce_on_rabbitmq_and_postgresql() {
    let shared = Shared::new();
    coalesce_bursts(Env::with_tables("", &shared.tables(), COALESCE_RULES));
}

#[test]
fn join_on_the_embedded_queue() {
    join_compose_tests(Env::new(JOIN_RULES));
}

#[test]
fn join_on_rabbitmq_and_postgresql() {
    let shared = Shared::new();
    join_compose_tests(Env::with_tables("", &shared.tables(), JOIN_RULES));
}

#[test]
fn dry_run_says_which_key_a_message_would_coalesce_into() {
    let env = Env::new(COALESCE_RULES);
    recorder(&env, "regen.yml");
    let msgs = env.path("msgs");
    std::fs::create_dir_all(&msgs).unwrap();
    let file = tag_messages(&msgs, "f44-build-side", 1).remove(0);
    let out = env.ok(&["dry-run", &file]);
    assert!(out.contains("would coalesce into key \"f44-build-side\""), "{out}");
}
