//! The engine core's acceptance, end to end: the real `relflow` binary, the
//! embedded queue, and real `ansible-playbook` runs.

mod common;

use std::time::Duration;

use common::{fixture, play, processes_with, wait_for, Env};
use serde_json::{json, Value};

const COMPOSE_RULE: &str = r#"
[[rule]]
name = "compose-finished"
topic = "org.fedoraproject.*.pungi.compose.status.change"
when = 'msg.status in ["FINISHED", "FINISHED_INCOMPLETE"]'
playbook = "compose_finished.yml"
"#;

#[test]
fn the_example_flow_runs_the_playbook_with_the_message_and_records_it() {
    // The shipped example config and playbooks, pointed at a private data dir.
    let env = Env::new("");
    let example = std::fs::read_to_string(common::repo_root().join("examples/relflow.toml")).unwrap();
    let example = example
        .replace(
            "playbooks_dir = \"playbooks\"",
            &format!("playbooks_dir = {:?}", common::repo_root().join("examples/playbooks")),
        )
        .replace("data_dir = \"../.relflow/example\"", "data_dir = \"data\"")
        .replace(
            "playbook_cmd = \"../.venv/bin/ansible-playbook\"",
            &format!("playbook_cmd = {:?}", common::ansible_playbook()),
        )
        .replace(
            "config = \"ansible.cfg\"",
            &format!("config = {:?}", common::repo_root().join("examples/ansible.cfg")),
        )
        // [check] samples and the rule tests' messages.
        .replace("\"messages/", &format!("\"{}/", common::repo_root().join("examples/messages").display()));
    std::fs::write(&env.config, example).unwrap();
    env.ok(&["check"]);

    let finished = fixture("org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json");
    let started = fixture("org.fedoraproject.prod.pungi.compose.status.change--STARTED.json");
    env.ok(&["publish", finished.to_str().unwrap(), started.to_str().unwrap()]);
    env.drain();

    let runs = env.runs();
    assert_eq!(runs.len(), 1, "STARTED matches no rule: {runs:#?}");
    let run = &runs[0];
    assert_eq!(
        (run["rule"].as_str(), run["status"].as_str(), run["exit_code"].as_i64()),
        (Some("compose-finished"), Some("succeeded"), Some(0))
    );
    let log = env.ok(&["runs", "log", run["id"].as_str().unwrap()]);
    assert!(log.contains("compose Fedora-24-20151208.n.7 is FINISHED"), "msg.compose_id reached the playbook:\n{log}");
    let status = env.json(&["status"]);
    assert_eq!(status["noop_messages"], 1);
    assert_eq!(status["queue"]["ready"], 0);
    let shown = env.json(&["runs", "show", &run["id"].as_str().unwrap()[..8]]);
    assert_eq!(shown["counts"]["ok"], 2, "per-task results are recorded: {shown:#}");
    assert_eq!(shown["tasks"].as_array().unwrap().len(), 2);
}

#[test]
fn hostile_payloads_stay_data() {
    let env = Env::new(
        &COMPOSE_RULE
            .replace("compose.status.change", "hostile")
            .replace("when = 'msg.status in [\"FINISHED\", \"FINISHED_INCOMPLETE\"]'\n", ""),
    );
    env.playbook(
        "compose_finished.yml",
        &play("    - debug: var=msg\n    - debug:\n        msg: \"cmd is {{ msg.cmd }}\"\n    - debug: var=headers\n"),
    );
    let pwned = env.path("PWNED");
    let key_pwned = env.path("KEY-PWNED");
    let body = json!({
        "cmd": format!("{{{{ lookup('pipe','touch {}') }}}}", pwned.display()),
        "ansible_connection": "bogus",
        "ansible_become": true,
        "nested": {format!("{{{{ lookup('pipe','touch {}') }}}}", key_pwned.display()): [format!("{{% raw %}}{{{{ lookup('pipe','touch {}') }}}}", pwned.display())]},
    });
    env.publish_body("org.fedoraproject.prod.pungi.hostile", &body);
    env.drain();

    let runs = env.runs();
    assert_eq!(
        runs[0]["status"], "succeeded",
        "a top-level ansible_connection override would have broken the run: {runs:#?}"
    );
    assert!(!pwned.exists(), "Jinja in a payload value was evaluated");
    assert!(!key_pwned.exists(), "Jinja in a payload key was evaluated");
    let log = env.ok(&["runs", "log", runs[0]["id"].as_str().unwrap()]);
    assert!(log.contains("cmd is {{ lookup('pipe','touch"), "the template is printed as text:\n{log}");
    assert!(log.contains("\"ansible_connection\": \"bogus\""), "the key is just data under msg:\n{log}");
}

#[test]
fn check_rejects_a_playbook_outside_the_playbooks_dir() {
    let env = Env::new("[[rule]]\nname = \"escape\"\ntopic = \"#\"\nplaybook = \"../../x.yml\"\n");
    let out = env.run(&["check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("escape") && err.contains("must not contain `..`"), "{err}");

    let env = Env::new("[[rule]]\nname = \"missing\"\ntopic = \"#\"\nplaybook = \"nope.yml\"\n");
    let out = env.run(&["check"]);
    assert!(!out.status.success(), "a missing playbook fails check");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn a_failing_playbook_is_retried_with_backoff_then_dead_lettered_and_replayable() {
    let env = Env::new("[[rule]]\nname = \"flaky\"\ntopic = \"a.b\"\nplaybook = \"flaky.yml\"\nretries = 2\n");
    // Fails until the marker file exists.
    let marker = env.path("fixed");
    env.playbook(
        "flaky.yml",
        &play(&format!(
            "    - stat: path={}\n      register: fixed\n    - fail: msg=\"upstream is broken\"\n      when: not fixed.stat.exists\n",
            marker.display()
        )),
    );
    env.publish_body("a.b", &json!({"n": 1}));
    assert_eq!(env.drain(), "drained: 1 message(s): 0 done, 1 dead-lettered (2 retries)\n");

    let mut runs = env.runs();
    runs.reverse();
    let attempts: Vec<_> =
        runs.iter().map(|r| (r["attempt"].as_u64().unwrap(), r["status"].as_str().unwrap().to_owned())).collect();
    assert_eq!(attempts, [(1, "failed".into()), (2, "failed".into()), (3, "failed".into())]);
    // Backoff: 200ms, then 400ms, between the end of one attempt and the next.
    let t = |r: &Value, k: &str| chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap()).unwrap();
    assert!(t(&runs[1], "started_at") - t(&runs[0], "finished_at") >= chrono::Duration::milliseconds(200));
    assert!(t(&runs[2], "started_at") - t(&runs[1], "finished_at") >= chrono::Duration::milliseconds(400));

    let dead = env.json(&["dead-letters", "list"]);
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 1);
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(reason.contains("flaky") && reason.contains("upstream is broken"), "{reason}");
    assert_eq!(dead[0]["attempt"], 3);

    std::fs::write(&marker, "").unwrap();
    env.ok(&["dead-letters", "replay", &dead[0]["id"].to_string()]);
    assert_eq!(env.drain(), "drained: 1 message(s): 1 done, 0 dead-lettered\n");
    let runs = env.runs();
    assert_eq!(runs.len(), 4);
    // The replay gets a fresh retry budget, but its attempt number keeps counting (issue 15).
    assert_eq!((runs[0]["status"].as_str(), runs[0]["attempt"].as_u64()), (Some("succeeded"), Some(4)));
    assert!(env.json(&["dead-letters", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn a_killed_worker_loses_nothing_and_leaves_no_ansible_behind() {
    let env = Env::with_tables(
        "",
        "[queue]\nvisibility_timeout = \"2s\"\n",
        "[[rule]]\nname = \"long\"\ntopic = \"long.job\"\nplaybook = \"long.yml\"\n",
    );
    // The first run takes "forever"; once the marker exists, runs are quick.
    let marker = env.path("first-run-started");
    env.playbook(
        "long.yml",
        &play(&format!(
            "    - stat: path={m}\n      register: seen\n    - file: path={m} state=touch\n    \
             - command: sleep 4711\n      when: not seen.stat.exists\n",
            m = marker.display()
        )),
    );
    env.publish_body("long.job", &json!({"id": 1}));

    let mut worker = env.spawn_worker(&[]);
    wait_for(Duration::from_secs(60), "the long task to start", || {
        (!processes_with("sleep 4711").is_empty()).then_some(())
    });
    worker.kill().unwrap(); // SIGKILL
    worker.wait().unwrap();
    // The supervisor sees its parent die and tears the playbook down.
    wait_for(Duration::from_secs(30), "the orphaned playbook to be killed", || {
        processes_with("sleep 4711").is_empty().then_some(())
    });

    env.drain();
    let runs = env.runs();
    let statuses: Vec<_> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["succeeded", "abandoned"], "redelivered and completed once: {runs:#?}");
    assert_eq!(runs[0]["message_id"], runs[1]["message_id"]);
    let depth = &env.json(&["status"])["queue"];
    assert_eq!(
        (depth["ready"].as_u64(), depth["in_flight"].as_u64(), depth["dead"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
}

#[test]
fn a_timed_out_run_is_killed_with_its_whole_process_tree() {
    let env = Env::new("[[rule]]\nname = \"slow\"\ntopic = \"slow.job\"\nplaybook = \"slow.yml\"\ntimeout = \"3s\"\n");
    env.playbook("slow.yml", &play("    - shell: \"setsid sleep 4713 & sleep 4712\"\n"));
    env.publish_body("slow.job", &json!({}));
    env.drain();
    let runs = env.runs();
    assert_eq!(runs[0]["status"], "timed_out", "{runs:#?}");
    assert!(processes_with("sleep 4712").is_empty(), "the task's process survived the timeout");
    assert!(processes_with("sleep 4713").is_empty(), "a setsid'd process escaped the timeout kill");
    let dead = env.json(&["dead-letters", "list"]);
    assert!(dead[0]["reason"].as_str().unwrap().contains("slow"), "{dead:#}");
}

#[test]
fn a_redelivered_message_does_not_rerun_a_finished_rule() {
    let env = Env::new("[[rule]]\nname = \"once\"\ntopic = \"x.y\"\nplaybook = \"once.yml\"\n");
    env.playbook("once.yml", &play("    - debug: msg=hi\n"));
    let file = env.path("m.json");
    std::fs::write(&file, json!({"topic": "x.y", "msg": {}, "msg_id": "same-id"}).to_string()).unwrap();
    // Two copies of one event (a relay delivering twice).
    env.ok(&["publish", file.to_str().unwrap(), file.to_str().unwrap()]);
    env.drain();
    let runs = env.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(env.json(&["status"])["queue"]["ready"], 0, "both copies were acked");
}

#[test]
fn undecodable_and_unrunnable_messages_are_dead_lettered_at_once() {
    let env = Env::new("[[rule]]\nname = \"gone\"\ntopic = \"x.y\"\nplaybook = \"gone.yml\"\nretries = 5\n");
    env.publish_body("x.y", &json!({}));
    // A producer that bypasses `relflow publish` and writes garbage.
    let db = env.path("data/relflow.sqlite3");
    assert!(insert_raw_payload(&db), "inserted a raw payload");
    let out = env.run(&["worker", "--drain"]);
    assert_eq!(out.status.code(), Some(3), "dead letters make --drain exit 3: {}", common::describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "drained: 2 message(s): 0 done, 2 dead-lettered\n");
    let dead = env.json(&["dead-letters", "list"]);
    let reasons: Vec<_> = dead.as_array().unwrap().iter().map(|d| d["reason"].as_str().unwrap().to_owned()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("gone.yml does not exist")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("undecodable")), "{reasons:?}");
    let runs = env.runs();
    assert_eq!((runs.len(), runs[0]["status"].as_str()), (1, Some("error")), "a missing playbook is not retried");
}

/// Appends a non-JSON payload to the embedded queue, as a foreign producer
/// would, with Python's sqlite3 module (always there: ansible needs Python).
fn insert_raw_payload(db: &std::path::Path) -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1]); c.execute('INSERT INTO queue (payload, not_before) VALUES (?, ?)', (b'\\xff not json', int(time.time()*1000))); c.commit()"])
        .arg(db)
        .status()
        .unwrap()
        .success()
}

#[test]
fn dry_run_shows_matches_and_exact_extra_vars_without_running() {
    let env = Env::new(COMPOSE_RULE);
    env.playbook("compose_finished.yml", &play("    - debug: msg=hi\n"));
    let finished = fixture("org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json");
    let report = env.json(&["dry-run", finished.to_str().unwrap()]);
    let vars = &report[0]["runs"][0]["extra_vars"];
    let mut keys: Vec<_> = vars.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["headers", "msg", "msg_id", "relflow", "sent_at", "topic"]);
    assert_eq!(vars["msg"]["compose_id"], "Fedora-24-20151208.n.7");
    assert_eq!(vars["relflow"]["rule"], "compose-finished");
    assert!(env.runs().is_empty(), "dry-run runs nothing");
    assert_eq!(env.json(&["status"])["queue"]["ready"], 0, "and queues nothing");
}

#[test]
fn loopabull_config_routes_to_the_playbooks_loopabull_would_run() {
    let env = Env::new("");
    let cfg = env.path("ansible.cfg");
    std::fs::write(&cfg, "[defaults]\ninterpreter_python = auto_silent\n").unwrap();
    let yaml = format!(
        "plugins:\n  looper:\n    name: fedmsgrabbitmq\n  translator:\n    name: rkdirectory\nrouting_keys:\n  \
         - org.fedoraproject.prod.buildsys.build.state.change\nansible:\n  playbooks_dir: playbooks\n  \
         cfg_file_path: {}\n  playbook_cmd: {}\n",
        cfg.display(),
        common::ansible_playbook().display()
    );
    let loopabull = env.path("loopabull.yml");
    std::fs::write(&loopabull, yaml).unwrap();
    env.playbook(
        "org/fedoraproject/prod/buildsys/build/state/change.yml",
        &play("    - debug: msg=\"{{ msg.name }} {{ topic }}\"\n"),
    );

    let relflow = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_relflow"))
            .arg("--config")
            .arg(&loopabull)
            .args(args)
            .env("RELFLOW_DATA_DIR", env.path("data"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::describe(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    relflow(&["check"]);
    let msg = fixture("org.fedoraproject.prod.buildsys.build.state.change--COMPLETE-unsigned.json");
    relflow(&["publish", msg.to_str().unwrap()]);
    relflow(&["worker", "--drain"]);
    let runs: Value = serde_json::from_str(&relflow(&["runs", "list", "--json"])).unwrap();
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#}");
    assert!(runs[0]["playbook"]
        .as_str()
        .unwrap()
        .ends_with("playbooks/org/fedoraproject/prod/buildsys/build/state/change.yml"));
}

fn sigterm(child: &std::process::Child) {
    let ok = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success();
    assert!(ok);
}

#[test]
fn sigterm_finishes_running_work_and_takes_no_new_work() {
    let env = Env::with_settings(
        "concurrency = 1\n",
        "[[rule]]\nname = \"job\"\ntopic = \"job.run\"\nplaybook = \"job.yml\"\n",
    );
    env.playbook("job.yml", &play("    - command: sleep 3.4714\n"));
    env.publish_body("job.run", &json!({"n": 1}));
    env.publish_body("job.run", &json!({"n": 2}));
    let mut worker = env.spawn_worker(&[]);
    wait_for(Duration::from_secs(60), "the first run to start", || {
        (!processes_with("sleep 3.4714").is_empty()).then_some(())
    });
    sigterm(&worker);
    let status = worker.wait().unwrap();
    assert!(status.success(), "a drained worker exits 0: {status}");
    let runs = env.runs();
    assert_eq!(runs.len(), 1, "no new message was taken after SIGTERM: {runs:#?}");
    assert_eq!(runs[0]["status"], "succeeded", "the running playbook was allowed to finish");
    assert_eq!(env.json(&["status"])["queue"]["ready"], 1, "the second message waits for the next worker");
}

#[test]
fn past_the_drain_timeout_running_work_is_stopped_and_redelivered() {
    let env = Env::with_settings(
        "drain_timeout = \"1s\"\n",
        "[[rule]]\nname = \"job\"\ntopic = \"job.run\"\nplaybook = \"job.yml\"\n",
    );
    let marker = env.path("started-once");
    env.playbook(
        "job.yml",
        &play(&format!(
            "    - stat: path={m}\n      register: seen\n    - file: path={m} state=touch\n    \
             - command: sleep 4715\n      when: not seen.stat.exists\n",
            m = marker.display()
        )),
    );
    env.publish_body("job.run", &json!({}));
    let mut worker = env.spawn_worker(&[]);
    wait_for(Duration::from_secs(60), "the run to start", || (!processes_with("sleep 4715").is_empty()).then_some(()));
    sigterm(&worker);
    assert!(worker.wait().unwrap().success());
    assert!(processes_with("sleep 4715").is_empty(), "the stopped run left processes behind");
    let runs = env.runs();
    assert_eq!(runs[0]["status"], "cancelled", "{runs:#?}");
    assert_eq!(env.json(&["status"])["queue"]["ready"], 1, "released at once, not after a lease timeout");
    env.drain();
    assert_eq!(env.runs()[0]["status"], "succeeded");
    assert!(env.json(&["dead-letters", "list"]).as_array().unwrap().is_empty(), "a shutdown is not a failure");
}

/// `relflow publish` goes through the intake: the same message twice is
/// queued once (the second says so and exits 0); `--force` queues it again.
#[test]
fn publish_dedupes_and_force_queues_again() {
    let env = Env::new("");
    let file = common::fixture("org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json");
    let file = file.to_str().unwrap();
    assert!(env.ok(&["publish", file]).starts_with("published "));
    let again = env.ok(&["publish", file]);
    assert!(again.starts_with("duplicate ") && again.contains("--force"), "{again}");
    assert_eq!(env.json(&["status"])["queue"]["ready"], 1, "the duplicate was not queued");
    assert!(env.ok(&["publish", "--force", file]).starts_with("published "));
    assert_eq!(env.json(&["status"])["queue"]["ready"], 2, "--force queues it again");
}

/// `[worker] visibility_timeout` still loads, moved to `[queue]`, with a
/// warning from `check`.
#[test]
fn the_old_visibility_timeout_key_is_a_deprecated_alias() {
    let env = Env::with_settings("visibility_timeout = \"5s\"\n", "");
    let out = env.ok(&["check"]);
    assert!(
        out.contains("[worker] visibility_timeout is deprecated") && out.contains("[queue] visibility_timeout"),
        "{out}"
    );
}
