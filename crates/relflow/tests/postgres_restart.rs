//! PostgreSQL restarts while two workers run rules of one concurrency
//! group: no run record is lost, none is repeated (and the playbook itself
//! ran once per message), the workers carry on by themselves, and no two
//! runs of the group overlap across the restart.
//!
//! The database server is the test's own (relflow_testkit::PgServer):
//! restarting the machine's shared PostgreSQL would cut every other test's
//! connections, and is not this test's to do.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{play, wait_for, Env, Proc};
use relflow_testkit::{PgServer, Vhost};
use serde_json::json;

const MESSAGES: u64 = 6;

#[test]
fn workers_ride_out_a_postgres_restart_and_the_group_never_overlaps() {
    let pg = PgServer::start();
    let vhost = Vhost::new("pgrestart");
    // prefetch = concurrency: each worker holds two messages, so the other
    // worker's runs wait on the store's lock, not on this one's own.
    let env = Env::with_tables(
        "concurrency = 2\nprefetch = 2\n",
        &format!("[queue]\nurl = \"{}\"\n\n[store]\nurl = \"{}\"\n", vhost.url(), pg.url()),
        "[[rule]]\nname = \"deploy\"\ntopic = \"pg.restart\"\nplaybook = \"deploy.yml\"\n\
         concurrency_group = \"deploy\"\n",
    );
    // Each run writes when it really started and ended (ns), around a pause
    // longer than the restart, so the restart lands inside a run.
    let journal = env.path("journal");
    env.playbook(
        "deploy.yml",
        &play(&format!(
            "    - shell: |\n        echo \"start {{{{ msg.n }}}} $(date +%s%N)\" >> {j}\n        sleep 3\n        \
             echo \"end {{{{ msg.n }}}} $(date +%s%N)\" >> {j}\n",
            j = journal.display()
        )),
    );
    for n in 0..MESSAGES {
        env.publish_body("pg.restart", &json!({"n": n}));
    }
    let workers = [Proc(env.spawn_worker(&[])), Proc(env.spawn_worker(&[]))];

    wait_for(Duration::from_secs(120), "a run under way after the first ones", || {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        (succeeded(&env) >= 2 && text.lines().last().is_some_and(|l| l.starts_with("start"))).then_some(())
    });
    let before = pg.started_at();
    pg.restart();
    assert_ne!(pg.started_at(), before, "the server restarted");

    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while (succeeded(&env) as u64) < MESSAGES {
        assert!(
            std::time::Instant::now() < deadline,
            "not every message ran after the restart:\nruns: {:#?}\ndead letters: {}\njournal:\n{}\n{}",
            env.runs(),
            env.json(&["dead-letters", "list"]),
            std::fs::read_to_string(&journal).unwrap_or_default(),
            env.worker_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Anything still in flight would show up as a second run or a dead letter.
    std::thread::sleep(Duration::from_secs(2));
    for mut w in workers {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(w.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        assert!(w.0.wait().unwrap().success(), "worker logs:\n{}", env.worker_logs());
    }
    let logs = env.worker_logs();
    let runs = env.runs();
    let mut per_message: HashMap<String, Vec<String>> = HashMap::new();
    for r in &runs {
        per_message.entry(r["message_id"].as_str().unwrap().to_owned()).or_default().push(r["status"].to_string());
    }
    assert_eq!(per_message.len() as u64, MESSAGES, "every message has a run record: {runs:#?}\n{logs}");
    for (id, statuses) in &per_message {
        assert_eq!(statuses, &["\"succeeded\""], "message {id}: one run, succeeded\n{logs}");
    }
    assert!(env.json(&["dead-letters", "list"]).as_array().unwrap().is_empty(), "no dead letters\n{logs}");

    let spans = spans(&std::fs::read_to_string(&journal).unwrap());
    assert_eq!(spans.len() as u64, MESSAGES, "the playbook ran once per message: {spans:?}\n{logs}");
    let mut ordered: Vec<(u128, u128)> = spans.values().copied().collect();
    ordered.sort();
    for pair in ordered.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two runs of the group overlapped: {ordered:?}\n{logs}");
    }
    assert!(logs.contains("PostgreSQL"), "the workers saw the restart:\n{logs}");
}

fn succeeded(env: &Env) -> usize {
    env.runs().iter().filter(|r| r["status"] == "succeeded").count()
}

/// `n -> (start, end)` from the journal; panics if a message started twice.
fn spans(journal: &str) -> HashMap<u64, (u128, u128)> {
    let mut starts = HashMap::new();
    let mut spans = HashMap::new();
    for line in journal.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (n, at): (u64, u128) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        match f[0] {
            "start" => assert!(starts.insert(n, at).is_none(), "message {n} started twice:\n{journal}"),
            _ => assert!(spans.insert(n, (starts[&n], at)).is_none(), "message {n} ended twice:\n{journal}"),
        }
    }
    assert_eq!(starts.len(), spans.len(), "every run that started ended:\n{journal}");
    spans
}
