//! `[worker] prefetch` is separate from `concurrency`: while a playbook holds
//! every run slot, the worker keeps claiming, matching and acking messages
//! that need no playbook. Real worker, real queues, real ansible.

mod common;

use std::time::Duration;

use common::{play, wait_for, Env, Shared};
use serde_json::json;

const NOOPS: u64 = 20;

/// One slot, held by a playbook that waits for a file the test creates
/// only after checking that the no-ops went through.
fn slot_held_by_a_waiting_playbook(env: &Env) {
    let gate = env.path("gate");
    env.playbook("slow.yml", &play(&format!("    - wait_for: path={} timeout=600\n", gate.display())));
    env.publish_body("job.slow", &json!({"n": 0}));
    let files: Vec<String> = (0..NOOPS)
        .map(|n| {
            let path = env.path(&format!("noop{n}.json"));
            let msg = json!({"topic": "nothing.matches", "msg": {"n": n}, "msg_id": format!("noop-{n}")});
            std::fs::write(&path, msg.to_string()).unwrap();
            path.display().to_string()
        })
        .collect();
    let mut worker = env.spawn_worker(&[]);
    wait_for(Duration::from_secs(120), "the slow run to start", || {
        env.runs().first().is_some_and(|r| r["status"] == "running").then_some(())
    });
    let mut args = vec!["publish"];
    args.extend(files.iter().map(String::as_str));
    env.ok(&args);
    wait_for(Duration::from_secs(120), "every no-op to be acked", || {
        (env.json(&["status"])["noop_messages"] == NOOPS).then_some(())
    });
    let runs = env.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "running", "the no-ops went through while the playbook held the only slot");
    let queue = &env.json(&["status"])["queue"];
    assert_eq!(queue["ready"], 0, "nothing waits behind the running playbook: {queue}");
    std::fs::write(&gate, "").unwrap();
    wait_for(Duration::from_secs(120), "the slow run to finish", || {
        (env.runs()[0]["status"] == "succeeded").then_some(())
    });
    let ok = std::process::Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap();
    assert!(ok.success());
    assert!(worker.wait().unwrap().success(), "{}", env.worker_logs());
}

const RULE: &str = "[[rule]]\nname = \"slow\"\ntopic = \"job.slow\"\nplaybook = \"slow.yml\"\n";

#[test]
fn noops_are_acked_while_a_playbook_holds_the_only_slot_embedded_queue() {
    let env = Env::with_settings("concurrency = 1\n", RULE);
    slot_held_by_a_waiting_playbook(&env);
}

#[test]
fn noops_are_acked_while_a_playbook_holds_the_only_slot_rabbitmq() {
    let shared = Shared::new();
    let env = Env::with_tables("concurrency = 1\n", &shared.tables(), RULE);
    slot_held_by_a_waiting_playbook(&env);
}
