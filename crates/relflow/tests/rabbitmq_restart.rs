//! RabbitMQ restarts under load: workers and a publisher reconnect by
//! themselves, and every confirmed message ends with exactly one completed run.
//!
//! The broker is a node of the test's own (relflow_testkit::RabbitNode):
//! stopping the machine's shared broker would cut every other test's
//! connections, and is not this test's to do.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{play, wait_for, Env};
use relflow_testkit::{PgDatabase, RabbitNode};
use serde_json::json;

#[test]
fn workers_and_publishers_ride_out_a_broker_restart() {
    let mut broker = RabbitNode::start();
    let db = PgDatabase::new();
    let env = Env::with_tables(
        "concurrency = 2\n",
        &format!("[queue]\nurl = \"{}\"\n\n[store]\nurl = \"{}\"\n", broker.url(), db.url()),
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
    // Down for a few seconds (a graceful stop, as `systemctl restart`
    // does), then back on the same port with the same data.
    broker.stop();
    std::thread::sleep(Duration::from_secs(3));
    broker.restart();
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
