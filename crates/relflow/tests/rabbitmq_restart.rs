//! RabbitMQ restarts under load: workers and a publisher reconnect by
//! themselves, and every confirmed message ends with exactly one completed run.
//!
//! Its own test binary on purpose: `rabbitmqctl stop_app` drops every
//! connection on the broker, and cargo runs test binaries one at a time, so
//! no other RabbitMQ test sees the outage.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{play, wait_for, Env, Shared};
use serde_json::json;

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl").args(args).output().unwrap();
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", common::describe(&out));
}

/// Starts the broker app again even if the test fails half-way, so a failure
/// here never leaves RabbitMQ down for whatever runs next.
struct StartAppOnDrop;

impl Drop for StartAppOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
        let _ = Command::new("rabbitmqctl").args(["await_startup", "--timeout", "60"]).output();
    }
}

#[test]
fn workers_and_publishers_ride_out_a_broker_restart() {
    let shared = Shared::new();
    let env = Env::with_tables(
        "concurrency = 2\n",
        &shared.tables(),
        "[[rule]]\nname = \"each\"\ntopic = \"restart.test\"\nplaybook = \"each.yml\"\n",
    );
    env.playbook("each.yml", &play("    - debug: msg=\"n={{ msg.n }}\"\n"));
    let workers = vec![env.spawn_worker(&[]), env.spawn_worker(&[])];

    // The publisher: one `relflow publish` per message, as a script would
    // do. A message is confirmed when publish exits 0 (it waits for the
    // broker's confirm).
    let published = Arc::new(AtomicU32::new(0));
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let publisher = {
        let (published, confirmed) = (Arc::clone(&published), Arc::clone(&confirmed));
        let config = env.config.clone();
        std::thread::spawn(move || {
            for n in 0..60 {
                let out = Command::new(env!("CARGO_BIN_EXE_relflow"))
                    .arg("--config")
                    .arg(&config)
                    .args(["publish", "--topic", "restart.test", &json!({"n": n}).to_string()])
                    .output()
                    .unwrap();
                if out.status.success() {
                    let line = String::from_utf8_lossy(&out.stdout).into_owned();
                    let id = line.split_whitespace().nth(1).unwrap().to_owned();
                    confirmed.lock().unwrap().push(id);
                }
                published.store(n + 1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    wait_for(Duration::from_secs(120), "the first runs to complete", || (env.runs().len() >= 5).then_some(()));
    {
        let _restart = StartAppOnDrop;
        rabbitmqctl(&["stop_app"]);
        std::thread::sleep(Duration::from_secs(3));
    } // start_app + await_startup
    publisher.join().unwrap();
    let confirmed = confirmed.lock().unwrap().clone();
    assert!(confirmed.len() >= 40, "most publishes got through: {}", confirmed.len());

    let runs = wait_for(Duration::from_secs(300), "a completed run for every confirmed message", || {
        let runs = env.runs();
        let done: Vec<_> = runs
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .map(|r| r["message_id"].as_str().unwrap().to_owned())
            .collect();
        confirmed.iter().all(|id| done.contains(id)).then_some(runs)
    });
    for mut w in workers {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(w.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        assert!(w.wait().unwrap().success(), "worker logs:\n{}", env.worker_logs());
    }
    let mut completed: HashMap<&str, usize> = HashMap::new();
    for r in runs.iter().filter(|r| r["status"] == "succeeded") {
        *completed.entry(r["message_id"].as_str().unwrap()).or_default() += 1;
    }
    for id in &confirmed {
        assert_eq!(completed.get(id.as_str()), Some(&1), "message {id}: exactly one completed run");
    }
    let logs = env.worker_logs();
    assert!(
        logs.contains("cannot claim from the queue") || logs.contains("could not settle"),
        "the workers saw the outage and carried on:\n{logs}"
    );
}
