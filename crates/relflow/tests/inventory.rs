//! Inventories as an operator writes them: paths relative to the config
//! file, checked by `relflow check` with the install's own
//! `ansible-inventory`, and a `limit` that matches no host is "no hosts
//! matched" (a dead letter) unless the rule allows it.

mod common;

use common::Env;
use serde_json::json;

const HOSTS: &str = "[web]\nlocalhost ansible_connection=local\n";

/// A play on the `web` group, run on localhost.
const WEB: &str = "- hosts: web\n  gather_facts: false\n  vars:\n    \
                   ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n  tasks:\n    - debug: msg=hi\n";

fn rule(name: &str, extra: &str) -> String {
    format!("[[rule]]\nname = \"{name}\"\ntopic = \"inv.{name}\"\nplaybook = \"web.yml\"\n{extra}\n")
}

#[test]
fn check_reads_the_inventory_beside_the_config_and_warns_about_a_limit_without_hosts() {
    let rules = rule("good", "limit = \"web\"") + &rule("typo", "limit = \"wbe\"");
    let env = Env::new(&rules);
    env.playbook("web.yml", WEB);
    // Beside the config file, not in playbooks_dir.
    std::fs::write(env.path("hosts.ini"), HOSTS).unwrap();
    env.set_inventory("hosts.ini");

    let report = env.json(&["check"]);
    assert_eq!(report["ok"], true, "{report:#}");
    let warnings: Vec<&str> = report["warnings"].as_array().unwrap().iter().filter_map(|w| w.as_str()).collect();
    let want = format!(
        "rule \"typo\": limit \"wbe\" matches no host in inventory {}: its runs would fail with \"no hosts matched\"",
        env.path("hosts.ini").display()
    );
    assert_eq!(warnings, [want.as_str()], "{report:#}");
    let text = env.ok(&["check"]);
    assert!(text.contains(&format!("warning: {want}")) && text.ends_with("ok\n"), "{text}");
}

#[test]
fn check_fails_on_an_inventory_that_is_missing_or_does_not_parse() {
    let env = Env::new(&rule("a", "inventory = \"compose.ini\""));
    env.playbook("web.yml", WEB);
    let out = env.run(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", common::describe(&out));
    assert!(err.contains(&format!("inventory {} does not exist", env.path("compose.ini").display())), "{err}");

    std::fs::write(env.path("compose.ini"), "[web\nw1 = =\n").unwrap();
    let out = env.run(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("does not parse: "), "{}", common::describe(&out));
}

#[test]
fn a_limit_that_matches_no_host_dead_letters_unless_the_rule_allows_it() {
    // Retries cannot make a host appear: the strict rule dead-letters at once.
    let rules =
        rule("strict", "limit = \"wbe\"\nretries = 3") + &rule("lenient", "limit = \"wbe\"\nallow_no_hosts = true");
    let env = Env::new(&(rules + &rule("fine", "limit = \"web\"")));
    env.playbook("web.yml", WEB);
    std::fs::write(env.path("hosts.ini"), HOSTS).unwrap();
    env.set_inventory("hosts.ini");
    for name in ["strict", "lenient", "fine"] {
        env.publish_body(&format!("inv.{name}"), &json!({}));
    }
    env.drain();

    let runs = env.runs();
    let status = |rule: &str| runs.iter().find(|r| r["rule"] == rule).map(|r| r["status"].as_str().unwrap().to_owned());
    assert_eq!(status("fine").as_deref(), Some("succeeded"), "{runs:#?}");
    assert_eq!(status("lenient").as_deref(), Some("succeeded"), "allow_no_hosts: {runs:#?}");
    assert_eq!(status("strict").as_deref(), Some("failed"), "{runs:#?}");
    assert_eq!(runs.len(), 3, "the strict rule was not retried (retries = 3): {runs:#?}");
    let dead = env.json(&["dead-letters", "list"]);
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("rule \"strict\": no hosts matched: "), "{reason}");
    assert_eq!(dead.as_array().unwrap().len(), 1);
}
