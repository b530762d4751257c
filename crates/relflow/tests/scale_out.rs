//! Many workers, one RabbitMQ queue, one PostgreSQL run history: the
//! scale-out setup, with real worker processes, the real broker and database
//! on 127.0.0.1 (a private vhost and database per test) and real ansible.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{play, processes_with, wait_for, Env, Shared};
use serde_json::{json, Value};

/// Each worker holds no more deliveries than it has run slots (prefetch =
/// concurrency), so the work spreads over the workers: these tests are about
/// several workers sharing one queue, not about one worker's read-ahead.
fn env(shared: &Shared, worker: &str, rules: &str) -> Env {
    let concurrency = worker.lines().find_map(|l| l.strip_prefix("concurrency = ")).unwrap_or("2");
    Env::with_tables(&format!("{worker}prefetch = {concurrency}\n"), &shared.tables(), rules)
}

fn wait_all(env: &Env, children: Vec<std::process::Child>) {
    for mut c in children {
        let out = c.wait().unwrap();
        assert!(out.success(), "worker exited with {out}; worker logs:\n{}", env.worker_logs());
    }
}

/// Waits until the broker reports `queue` with (ready, unacked). Quorum
/// queue counts reach `rabbitmqctl` with the stats interval (seconds), so
/// they are polled, not read once.
fn expect_queue(shared: &Shared, queue: &str, want: (u64, u64)) {
    let mut last = Vec::new();
    let found = std::time::Instant::now();
    while found.elapsed() < Duration::from_secs(60) {
        last = shared.queues();
        if last.iter().any(|q| q.0 == queue && (q.1, q.2) == want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{queue} never had (ready, unacked) = {want:?}; last seen {last:?}");
}

#[test]
fn three_workers_share_one_queue_and_run_each_message_once() {
    let shared = Shared::new();
    let env = env(
        &shared,
        "concurrency = 2\n",
        "[[rule]]\nname = \"each\"\ntopic = \"scale.test\"\nplaybook = \"each.yml\"\n",
    );
    env.playbook("each.yml", &play("    - debug: msg=\"n={{ msg.n }}\"\n"));
    let files: Vec<String> = (0..300)
        .map(|n| {
            let path = env.path(&format!("m{n}.json"));
            std::fs::write(
                &path,
                json!({"topic": "scale.test", "msg": {"n": n}, "msg_id": format!("scale-{n}")}).to_string(),
            )
            .unwrap();
            path.display().to_string()
        })
        .collect();
    let mut args = vec!["publish"];
    args.extend(files.iter().map(String::as_str));
    env.ok(&args);
    expect_queue(&shared, "relflow.work", (300, 0)); // all 300 confirmed on the queue

    wait_all(&env, (0..3).map(|_| env.spawn_worker(&["--drain"])).collect());

    let runs = env.runs();
    assert_eq!(runs.len(), 300, "one run per message");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"));
    let ids: HashSet<_> = runs.iter().map(|r| r["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 300, "no message ran twice, none was skipped");
    let mut per_worker: HashMap<&str, usize> = HashMap::new();
    for r in &runs {
        *per_worker.entry(r["worker"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(per_worker.len(), 3, "all three workers took work: {per_worker:?}");
    expect_queue(&shared, "relflow.work", (0, 0)); // everything acked
}

#[test]
fn a_killed_worker_s_message_completes_on_another_worker() {
    let shared = Shared::new();
    let env =
        env(&shared, "concurrency = 1\n", "[[rule]]\nname = \"job\"\ntopic = \"job.run\"\nplaybook = \"job.yml\"\n");
    let marker = env.path("long-run-started");
    // Message 0 takes "forever" the first time; every other run is quick.
    env.playbook(
        "job.yml",
        &play(&format!(
            "    - stat: path={m}\n      register: seen\n    - file: path={m} state=touch\n      when: msg.n == 0\n    \
             - command: sleep 4721\n      when: msg.n == 0 and not seen.stat.exists\n",
            m = marker.display()
        )),
    );
    for n in 0..6 {
        env.publish_body("job.run", &json!({"n": n}));
    }
    let mut first = env.spawn_worker(&[]);
    wait_for(Duration::from_secs(60), "the long run to start", || {
        (!processes_with("sleep 4721").is_empty()).then_some(())
    });
    let second = env.spawn_worker(&["--drain"]);
    first.kill().unwrap();
    first.wait().unwrap();
    wait_all(&env, vec![second]);

    assert!(processes_with("sleep 4721").is_empty(), "the killed worker's playbook survived it");
    let runs = env.runs();
    let succeeded: Vec<_> = runs.iter().filter(|r| r["status"] == "succeeded").collect();
    let ids: HashSet<_> = succeeded.iter().map(|r| r["message_id"].as_str().unwrap()).collect();
    assert_eq!((succeeded.len(), ids.len()), (6, 6), "0 lost, 0 duplicate completed runs: {runs:#?}");
    let abandoned: Vec<_> = runs.iter().filter(|r| r["status"] == "abandoned").collect();
    assert_eq!(abandoned.len(), 1, "the killed run is recorded as abandoned");
    expect_queue(&shared, "relflow.work", (0, 0));
}

#[test]
fn a_failing_run_goes_through_the_retry_queues_to_relflow_dead_and_replays() {
    let shared = Shared::new();
    let env = env(&shared, "", "[[rule]]\nname = \"flaky\"\ntopic = \"a.b\"\nplaybook = \"flaky.yml\"\nretries = 2\n");
    let marker = env.path("fixed");
    env.playbook(
        "flaky.yml",
        &play(&format!(
            "    - stat: path={}\n      register: fixed\n    - fail: msg=\"mirror unreachable\"\n      when: not fixed.stat.exists\n",
            marker.display()
        )),
    );
    env.publish_body("a.b", &json!({}));
    env.drain();

    let mut runs = env.runs();
    runs.reverse();
    let attempts: Vec<_> =
        runs.iter().map(|r| (r["attempt"].as_u64().unwrap(), r["status"].as_str().unwrap())).collect();
    assert_eq!(attempts, [(1, "failed"), (2, "failed"), (3, "failed")]);
    let t = |r: &Value, k: &str| chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap()).unwrap();
    assert!(t(&runs[1], "started_at") - t(&runs[0], "finished_at") >= chrono::Duration::milliseconds(200));
    assert!(t(&runs[2], "started_at") - t(&runs[1], "finished_at") >= chrono::Duration::milliseconds(400));
    let queues = shared.queues();
    for delay in ["relflow.retry.200ms", "relflow.retry.400ms"] {
        assert!(queues.iter().any(|q| q.0 == delay), "retried through {delay}: {queues:?}");
    }
    expect_queue(&shared, "relflow.dead", (1, 0));

    let dead = env.json(&["dead-letters", "list"]);
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(reason.contains("mirror unreachable"), "{reason}");
    assert_eq!(dead[0]["attempt"], 3);
    std::fs::write(&marker, "").unwrap();
    env.ok(&["dead-letters", "replay", &dead[0]["id"].to_string()]);
    env.drain();
    let runs = env.runs();
    // Attempts count across the replay: the fourth run of that rule for the message.
    assert_eq!((runs.len(), runs[0]["status"].as_str(), runs[0]["attempt"].as_u64()), (4, Some("succeeded"), Some(4)));
    assert!(env.json(&["dead-letters", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn rules_in_one_concurrency_group_never_overlap_across_workers() {
    let shared = Shared::new();
    let rules = "[[rule]]\nname = \"sync\"\ntopic = \"compose.done\"\nplaybook = \"slow.yml\"\nconcurrency_group = { expr = \"'compose-' + msg.release\" }\n\n\
                 [[rule]]\nname = \"notify\"\ntopic = \"compose.done\"\nplaybook = \"slow.yml\"\nconcurrency_group = { expr = \"'compose-' + msg.release\" }\n\n\
                 [[rule]]\nname = \"free\"\ntopic = \"compose.done\"\nplaybook = \"slow.yml\"\n";
    let env = env(&shared, "concurrency = 2\n", rules);
    env.playbook("slow.yml", &play("    - command: sleep 0.7\n"));
    for n in 0..3 {
        env.publish_body("compose.done", &json!({"release": "f41", "n": n}));
    }
    env.publish_body("compose.done", &json!({"release": "f42", "n": 9}));
    wait_all(&env, vec![env.spawn_worker(&["--drain"]), env.spawn_worker(&["--drain"])]);

    let runs = env.runs();
    assert_eq!(runs.len(), 12, "3 rules x 4 messages");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"));
    let span = |r: &Value| {
        let t = |k: &str| chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap()).unwrap();
        (t("started_at"), t("finished_at"))
    };
    let release = |r: &Value| {
        let m = env.json(&["runs", "show", r["id"].as_str().unwrap()]);
        m["message"]["body"]["release"].as_str().unwrap().to_owned()
    };
    let grouped: Vec<_> =
        runs.iter().filter(|r| r["rule"] != "free").map(|r| (release(r), r["worker"].clone(), span(r))).collect();
    let mut workers = HashSet::new();
    for (i, (rel_a, worker_a, (start_a, end_a))) in grouped.iter().enumerate() {
        workers.insert(worker_a.to_string());
        for (rel_b, _, (start_b, end_b)) in &grouped[i + 1..] {
            if rel_a == rel_b {
                assert!(end_a <= start_b || end_b <= start_a, "two {rel_a} runs overlapped: {grouped:#?}");
            }
        }
    }
    assert_eq!(workers.len(), 2, "both workers ran grouped rules, so the lock held across processes");
}
