//! Approval gates end to end: a gated rule's message waits in
//! `awaiting_approval` (no playbook runs) until it is approved (the rule
//! runs once), denied (nothing runs) or its approval expires (a dead
//! letter saying so). Real worker processes, real ansible, real HTTP.

mod common;

use std::time::Duration;

use common::serve::{Serve, TOKEN};
use common::{play, wait_for, Env};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(120);

/// A gated rule whose playbook leaves `ran-<n>` behind, so a test sees
/// whether (and for which message) it really ran.
fn gated_env(tables: &str, expires: &str) -> Env {
    let rules = format!(
        "[[rule]]\nname = \"push\"\ntopic = \"relflow.test.push\"\nplaybook = \"push.yml\"\n\
         approval = {{ approvers = [\"releng\"], expires = \"{expires}\" }}\n"
    );
    let env = Env::with_tables("", tables, &rules);
    let marker = env.path("ran-{{ msg.n }}");
    env.playbook("push.yml", &play(&format!("    - file: path=\"{}\" state=touch\n", marker.display())));
    env
}

fn only_run(env: &Env) -> Value {
    let runs = env.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

#[test]
fn approve_runs_the_rule_once_and_deny_runs_nothing() {
    let env = gated_env("", "1h");
    env.publish_body("relflow.test.push", &json!({"n": 1}));
    env.drain();
    let gate = only_run(&env);
    assert_eq!(gate["status"], "awaiting_approval");
    assert!(!env.path("ran-1").exists(), "nothing runs before an approval");
    let id = gate["id"].as_str().unwrap();

    let approved = env.json(&["runs", "approve", &id[..8]]);
    assert_eq!(approved["run_id"], id);
    env.drain();
    assert!(env.path("ran-1").exists(), "the approved rule ran");
    let runs = env.runs();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let run = runs.iter().find(|r| r["id"] != id).unwrap();
    assert_eq!(run["status"], "succeeded");
    assert_eq!(runs.iter().find(|r| r["id"] == id).unwrap()["status"], "approved");
    let again = env.run(&["runs", "approve", id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not awaiting approval"));
    let kinds: Vec<String> = env
        .json(&["runs", "history", gate["message_id"].as_str().unwrap()])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["run", "approved", "run"]);

    env.publish_body("relflow.test.push", &json!({"n": 2}));
    env.drain();
    let second = env.runs().into_iter().find(|r| r["status"] == "awaiting_approval").unwrap();
    let denied = env.json(&["runs", "deny", second["id"].as_str().unwrap(), "--reason", "freeze week"]);
    assert_eq!(denied["status"], "denied");
    env.drain();
    let shown = env.json(&["runs", "show", second["id"].as_str().unwrap()]);
    assert_eq!(shown["status"], "denied");
    assert!(shown["error"].as_str().unwrap().contains("freeze week"), "{shown}");
    assert!(!env.path("ran-2").exists(), "a denied run never runs");
    assert_eq!(env.runs().len(), 3);

    let audit = env.ok(&["audit", "export"]);
    let actions: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let actions: Vec<&str> = actions.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["publish", "approve", "publish", "deny"], "{audit}");
}

#[test]
fn an_approval_nobody_gives_expires_into_a_dead_letter() {
    let env = gated_env("", "2s");
    let mut worker = env.spawn_worker(&[]);
    env.publish_body("relflow.test.push", &json!({"n": 1}));
    let dead = wait_for(LIMIT, "the expired approval's dead letter", || {
        env.json(&["dead-letters", "list"]).as_array().unwrap().first().cloned()
    });
    assert!(dead["reason"].as_str().unwrap().contains("approval expired"), "{dead}\n{}", env.worker_logs());
    let gate = only_run(&env);
    assert_eq!(gate["status"], "denied");
    assert!(gate["error"].as_str().unwrap().contains("approval expired"), "{gate}");
    assert!(!env.path("ran-1").exists());
    let approve = env.run(&["runs", "approve", gate["id"].as_str().unwrap()]);
    assert!(!approve.status.success(), "too late to approve");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(worker.wait().unwrap().success(), "{}", env.worker_logs());
}

/// Named tokens: a viewer and two approvers in the `releng` group, and an
/// approver outside it.
fn env_with_approvers(tables: &str) -> Env {
    let roles = [
        ("vera", "viewer", "releng"),
        ("april", "approver", "releng"),
        ("abe", "approver", "releng"),
        ("ann", "approver", "qa"),
    ];
    let mut tokens = String::from(tables);
    for (name, role, group) in roles {
        tokens.push_str(&format!(
            "\n[[http.token]]\nname = \"{name}\"\nrole = \"{role}\"\ngroups = [\"{group}\"]\ntoken_file = \"{name}.token\"\n"
        ));
    }
    let env = gated_env(&tokens, "1h");
    for (name, _, _) in roles {
        std::fs::write(env.path(&format!("{name}.token")), secret(name)).unwrap();
    }
    env
}

fn secret(name: &str) -> String {
    format!("{name}-secret-0123456789")
}

#[test]
fn racing_approvals_make_one_run_and_only_listed_approvers_decide() {
    let s = Serve::start(env_with_approvers(""), &[]);
    s.publish("relflow.test.push", &json!({"n": 7}));
    let gate = wait_for(LIMIT, "the run to await approval", || s.runs("status=awaiting_approval").first().cloned());
    let id = gate["id"].as_str().unwrap().to_owned();
    let approve = format!("/api/runs/{id}/approve");

    let viewer = s.call("POST", &approve, Some(&secret("vera")), None);
    assert_eq!(viewer.status, 403, "{}", viewer.body);
    let outsider = s.call("POST", &approve, Some(&secret("ann")), None);
    assert_eq!(outsider.status, 403, "an approver not in approvers: {}", outsider.body);
    assert!(outsider.body.contains("releng"), "{}", outsider.body);

    // The admin token is no approver of this rule: approvers names who decides.
    assert_eq!(s.call("POST", &approve, Some(TOKEN), None).status, 403);
    // Four approvals at once, from two approvers.
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let calls: Vec<_> = ["april", "abe", "april", "abe"]
            .into_iter()
            .map(|who| {
                let (s, approve) = (&s, &approve);
                scope.spawn(move || s.call("POST", approve, Some(&secret(who)), None).status)
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut sorted = answers.clone();
    sorted.sort();
    assert_eq!(sorted, [202, 409, 409, 409], "one approval wins: {answers:?}");
    s.settle();
    let ran: Vec<Value> = s.runs("rule=push").into_iter().filter(|r| r["id"] != id.as_str()).collect();
    assert_eq!(ran.len(), 1, "exactly one run: {ran:?}");
    assert_eq!(ran[0]["status"], "succeeded");
    let shown = s.get_json(&format!("/api/runs/{}", ran[0]["id"].as_str().unwrap()));
    assert_eq!(shown["rerun_of"], id.as_str(), "the run links to its gate");
    assert_eq!(s.get_json(&format!("/api/runs/{id}"))["status"], "approved");

    let audit = s.env.ok(&["audit", "export"]);
    let entries: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let approvals: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["action"] == "approve")
        .map(|e| (e["who"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(approvals.len(), 7, "{audit}");
    let refused = [("vera", "denied"), ("ann", "failed: 403"), ("[http] token", "failed: 403")];
    assert_eq!(approvals[..3], refused, "{audit}");
    assert_eq!(approvals.iter().filter(|a| a.1 == "ok").count(), 1, "{audit}");
}

#[test]
fn deny_over_http_records_the_token_name() {
    let s = Serve::start(env_with_approvers(""), &[]);
    s.publish("relflow.test.push", &json!({"n": 8}));
    let gate = wait_for(LIMIT, "the run to await approval", || s.runs("status=awaiting_approval").first().cloned());
    let id = gate["id"].as_str().unwrap();
    let a = s.call("POST", &format!("/api/runs/{id}/deny"), Some(&secret("april")), Some(r#"{"reason": "not today"}"#));
    assert_eq!(a.status, 200, "{}", a.body);
    let run = s.get_json(&format!("/api/runs/{id}"));
    assert_eq!(run["status"], "denied");
    assert_eq!(run["error"], "denied by april: not today");
    s.settle();
    assert_eq!(s.runs("rule=push").len(), 1, "nothing ran");
}

#[test]
fn on_rabbitmq_and_postgresql_an_approved_run_runs_and_old_dead_letters_are_pruned() {
    let shared = common::Shared::new();
    let tables = format!("{}\n[retention]\ndead_letters = \"1s\"\n", shared.tables());
    let env = gated_env(&tables, "1h");
    let missing = "\n[[rule]]\nname = \"missing\"\ntopic = \"relflow.test.missing\"\nplaybook = \"missing.yml\"\n";
    let text = std::fs::read_to_string(&env.config).unwrap() + missing;
    std::fs::write(&env.config, text).unwrap();
    let mut worker = env.spawn_worker(&[]);
    env.publish_body("relflow.test.push", &json!({"n": 3}));
    let gate = wait_for(LIMIT, "the run to await approval", || {
        env.runs().into_iter().find(|r| r["status"] == "awaiting_approval")
    });
    // Acked: the gate holds no delivery.
    wait_for(LIMIT, "the work queue to be empty", || {
        shared.queues().iter().any(|q| q.0 == "relflow.work" && (q.1, q.2) == (0, 0)).then_some(())
    });
    env.ok(&["runs", "approve", gate["id"].as_str().unwrap()]);
    let run = wait_for(LIMIT, "the approved run to finish", || {
        env.runs().into_iter().find(|r| r["id"] != gate["id"] && r["status"] != "running")
    });
    assert_eq!(run["status"], "succeeded", "{}", env.worker_logs());
    assert!(env.path("ran-3").exists());

    // A dead letter (its playbook is missing) ages past 1s and is pruned.
    env.publish_body("relflow.test.missing", &json!({"n": 4}));
    wait_for(LIMIT, "the dead letter", || env.json(&["dead-letters", "list"]).as_array().unwrap().first().cloned());
    let dry = wait_for(LIMIT, "the dead letter to age", || {
        let dry = env.json(&["prune", "--dry-run"]);
        (dry["dead_letters"] == 1).then_some(dry)
    });
    assert_eq!(env.json(&["dead-letters", "list"]).as_array().unwrap().len(), 1, "a dry run keeps it: {dry}");
    assert_eq!(env.json(&["prune"])["dead_letters"], 1);
    assert!(env.json(&["dead-letters", "list"]).as_array().unwrap().is_empty());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(worker.wait().unwrap().success(), "{}", env.worker_logs());
}
