//! Operators acting on runs from the CLI: re-run a run that succeeded,
//! cancel a run another worker process holds (RabbitMQ + PostgreSQL), and
//! read a message's whole history. Real worker processes, real ansible.

mod common;

use std::time::Duration;

use common::serve::Serve;
use common::{fixture, play, processes_with, wait_for, Env, Shared};
use serde_json::Value;

const FINISHED: &str = "org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json";

fn compose_env(tables: &str) -> Env {
    Env::with_tables(
        "",
        tables,
        "[[rule]]\nname = \"compose\"\ntopic = \"org.fedoraproject.prod.pungi.compose.status.change\"\n\
         playbook = \"compose.yml\"\n",
    )
}

fn history(env: &Env, msg_id: &str) -> Vec<Value> {
    env.json(&["runs", "history", msg_id]).as_array().unwrap().clone()
}

#[test]
fn rerun_runs_a_succeeded_rule_again_linked_to_the_original() {
    let env = compose_env("");
    env.playbook("compose.yml", &play("    - debug: msg=\"{{ msg.compose_id }}\"\n"));
    env.ok(&["publish", fixture(FINISHED).to_str().unwrap()]);
    env.drain();
    let first = env.runs();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["status"], "succeeded");
    let (first_id, msg_id) = (first[0]["id"].as_str().unwrap(), first[0]["message_id"].as_str().unwrap());

    let asked = env.json(&["runs", "rerun", &first_id[..8]]);
    assert_eq!(asked["rerun_of"], first_id);
    env.drain();

    let runs = env.runs();
    assert_eq!(runs.len(), 2, "the re-run ran although the rule had succeeded: {runs:?}");
    let second = runs.iter().find(|r| r["id"] != first_id).unwrap();
    assert_eq!(second["status"], "succeeded");
    assert_eq!(second["message_id"], msg_id);
    assert_eq!(second["attempt"], 2, "attempts count across re-runs");
    let log = env.ok(&["runs", "log", second["id"].as_str().unwrap()]);
    assert!(log.contains("Fedora-"), "the re-run saw the same message:\n{log}");

    let h = history(&env, msg_id);
    let kinds: Vec<&str> = h.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["run", "rerun_requested", "run"], "{h:?}");
    assert_eq!(h[1]["run_id"], first_id);
    let text = env.ok(&["runs", "history", msg_id]);
    assert!(text.contains("rerun_requested") && text.contains("attempt 2"), "{text}");
}

#[test]
fn a_rerun_header_from_the_bus_changes_nothing() {
    let env = Env::new(
        "[[rule]]\nname = \"build\"\ntopic = \"org.fedoraproject.prod.buildsys.build.state.change\"\n\
         playbook = \"build.yml\"\n",
    );
    env.playbook("build.yml", &play("    - debug: msg=\"{{ msg.name }}\"\n"));
    let path = fixture("amqp/org.fedoraproject.prod.buildsys.build.state.change.json");
    env.ok(&["publish", path.to_str().unwrap()]);
    env.drain();
    assert_eq!(env.runs().len(), 1);

    // The same message again, claiming to be a re-run: no request backs it.
    let mut forged: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    forged["headers"]["relflow_rerun"] = "rerun:made-up".into();
    let forged_path = env.path("forged.json");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    env.ok(&["publish", "--force", forged_path.to_str().unwrap()]);
    env.drain();
    assert_eq!(env.runs().len(), 1, "the rule had succeeded and nobody asked for a re-run");
}

#[test]
fn cancel_stops_a_run_held_by_another_worker_process() {
    let shared = Shared::new();
    let env = compose_env(&shared.tables());
    // A marker no other test's process has, to find the playbook's child.
    env.playbook("compose.yml", &play("    - command: sleep 3141.5926\n"));
    let mut worker = env.spawn_worker(&[]);
    env.ok(&["publish", fixture(FINISHED).to_str().unwrap()]);
    let run = wait_for(Duration::from_secs(60), "the run to start its sleep", || {
        let runs = env.runs();
        let run = runs.first().filter(|r| r["status"] == "running")?.clone();
        (!processes_with("sleep 3141.5926").is_empty()).then_some(run)
    });
    let id = run["id"].as_str().unwrap();

    let asked = env.json(&["runs", "cancel", id]);
    assert_eq!(asked["already_requested"], false);
    let done = wait_for(Duration::from_secs(30), "the run to end", || {
        env.runs().into_iter().find(|r| r["id"] == id && r["status"] != "running")
    });
    assert_eq!(done["status"], "cancelled", "{}", env.worker_logs());
    assert!(done["error"].as_str().unwrap().contains("cancelled by"), "{done}");
    assert!(processes_with("sleep 3141.5926").is_empty(), "the playbook's process tree is gone");

    // Acked, not retried: the queue empties and no second run starts.
    wait_for(Duration::from_secs(60), "the queue to be empty", || {
        shared.queues().iter().any(|q| q.0 == "relflow.work" && (q.1, q.2) == (0, 0)).then_some(())
    });
    let h = history(&env, run["message_id"].as_str().unwrap());
    let kinds: Vec<&str> = h.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["run", "cancel_requested"], "{h:?}");
    assert_eq!(env.runs().len(), 1);

    let again = env.run(&["runs", "cancel", id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not running"));

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(worker.wait().unwrap().success(), "{}", env.worker_logs());
}

#[test]
fn replaying_a_dead_letter_whose_rule_since_succeeded_says_so_and_keeps_it() {
    let env = Env::new("[[rule]]\nname = \"flaky\"\ntopic = \"a.b\"\nplaybook = \"flaky.yml\"\n");
    let fixed = env.path("fixed");
    let task = format!(
        "    - stat: path={}\n      register: fixed\n    - fail: msg=broken\n      when: not fixed.stat.exists\n",
        fixed.display()
    );
    env.playbook("flaky.yml", &play(&task));
    let file = env.path("m.json");
    std::fs::write(&file, r#"{"topic": "a.b", "msg_id": "m-1", "msg": {"n": 1}}"#).unwrap();
    env.ok(&["publish", file.to_str().unwrap()]);
    env.drain();
    // Fixed, and the same message sent again: it succeeds this time.
    std::fs::write(&fixed, "").unwrap();
    env.ok(&["publish", "--force", file.to_str().unwrap()]);
    env.drain();
    let succeeded = env.runs().into_iter().find(|r| r["status"] == "succeeded").expect("the second copy succeeded");

    let dead = env.json(&["dead-letters", "list"]);
    let id = dead[0]["id"].to_string();
    let out = env.run(&["dead-letters", "replay", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let run = succeeded["id"].as_str().unwrap();
    assert!(
        stderr.contains(&format!("message m-1 already succeeded for every rule it matches (rule flaky: run {run})"))
    );
    assert!(stderr.contains("relflow runs rerun"), "{stderr}");
    assert_eq!(env.json(&["dead-letters", "list"]).as_array().unwrap().len(), 1, "the dead letter stays");
}

/// The fleet seen from another process, on RabbitMQ + PostgreSQL:
/// `relflow serve --no-worker`, `/metrics` and `relflow workers` show a
/// worker process alive, with its pid and the run it is running; the
/// queue's in-flight count is the delivery that worker holds (RabbitMQ
/// tells a client only about its own); a clean stop shows as stopped.
#[test]
fn the_fleet_shows_each_worker_and_what_it_runs_from_another_process() {
    let shared = Shared::new();
    let env = compose_env(&shared.tables());
    let go_on = env.path("go-on");
    env.playbook("compose.yml", &play(&format!("    - wait_for: path={} timeout=600\n", go_on.display())));
    let s = Serve::start(env, &["--no-worker"]);
    let mut worker = s.env.spawn_worker(&[]);
    s.env.ok(&["publish", fixture(FINISHED).to_str().unwrap()]);
    let run = wait_for(Duration::from_secs(60), "the run to start", || {
        s.env.runs().into_iter().find(|r| r["status"] == "running")
    });

    // Workers beat every 5 s: wait for a beat written while the run runs.
    let fleet = wait_for(Duration::from_secs(30), "a heartbeat with the run", || {
        let f = s.get_json("/api/workers");
        (f["workers"][0]["running"] == 1).then_some(f)
    });
    let w = &fleet["workers"][0];
    assert_eq!((w["state"].as_str(), w["pid"].as_u64()), (Some("alive"), Some(u64::from(worker.id()))), "{fleet}");
    assert_eq!(w["id"], run["worker"], "the id its runs are recorded with");
    assert_eq!((w["running"].as_u64(), w["held"].as_u64()), (Some(1), Some(1)), "{fleet}");
    assert_eq!(w["runs"][0]["id"], run["id"]);
    assert!(w["runs"][0]["subject"].as_str().unwrap().contains("FINISHED"), "{fleet}");
    assert_eq!((fleet["alive"].as_u64(), fleet["in_flight"].as_u64()), (Some(1), Some(1)));
    let depth = s.get_json("/api/queue")["depth"].clone();
    assert_eq!(depth["in_flight"], 1, "in flight over the fleet, not this process's 0: {depth}");
    let metrics = s.metrics();
    let gauge = |name: &str, label: (&str, &str)| {
        let found = metrics.samples.iter().find(|m| m.metric == name && m.labels.get(label.0) == Some(label.1));
        found.map(|m| format!("{:?}", m.value))
    };
    assert_eq!(gauge("relflow_workers", ("state", "alive")).as_deref(), Some("Gauge(1.0)"));
    assert_eq!(gauge("relflow_queue_depth", ("state", "in_flight")).as_deref(), Some("Gauge(1.0)"));
    let text = s.env.ok(&["workers"]);
    assert!(text.starts_with("1 alive: 1 deliveries in flight, 1 playbooks running"), "{text}");
    assert!(text.contains(&format!("running {}", &run["id"].as_str().unwrap()[..8])), "{text}");

    std::fs::write(&go_on, "").unwrap();
    wait_for(Duration::from_secs(60), "the run to succeed", || {
        s.env.runs().into_iter().find(|r| r["status"] == "succeeded")
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(worker.wait().unwrap().success(), "{}", s.env.worker_logs());
    let fleet = s.env.json(&["workers"]);
    assert_eq!(fleet["workers"][0]["state"], "stopped", "{fleet}");
    assert_eq!((fleet["alive"].as_u64(), fleet["in_flight"].as_u64()), (Some(0), Some(0)));
    assert_eq!(s.get_json("/api/queue")["depth"]["in_flight"], 0);
}
