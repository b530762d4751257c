//! Every playbook shipped in examples/ passes real `ansible-playbook
//! --syntax-check`, the example config passes `relflow check` and `relflow
//! test`; a wrong rule test, a misspelt key, a type mismatch and a broken
//! playbook are caught, and `dry-run` explains every rule.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn playbooks(dir: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![common::repo_root().join(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yml")
                && std::fs::read_to_string(&p).unwrap().contains("hosts:")
            {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn every_example_playbook_passes_ansible_syntax_check() {
    let books: Vec<_> = playbooks("examples/playbooks").into_iter().chain(playbooks("examples/flr")).collect();
    assert!(books.len() >= 4, "found {books:?}");
    for book in books {
        let out = Command::new(common::ansible_playbook())
            .args(["--syntax-check", "-i", "localhost,"])
            .arg(&book)
            .env("ANSIBLE_CONFIG", common::repo_root().join("examples/ansible.cfg"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", book.display(), common::describe(&out));
    }
}

#[test]
fn the_example_config_checks_out() {
    let out = Command::new(env!("CARGO_BIN_EXE_relflow"))
        .arg("--config")
        .arg(common::repo_root().join("examples/relflow.toml"))
        .arg("check")
        .env("RELFLOW_DATA_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
}

#[test]
fn the_systemd_units_verify() {
    let dir = tempfile::tempdir().unwrap();
    for unit in ["relflow-worker@.service", "relflow-bridge.service"] {
        let text = std::fs::read_to_string(common::repo_root().join("contrib/systemd").join(unit)).unwrap();
        let text = text.replace("/usr/bin/relflow", env!("CARGO_BIN_EXE_relflow"));
        // A template is verified through an instance of it.
        let name = unit.replace("@.service", "@1.service");
        std::fs::write(dir.path().join(&name), text).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.path().join(&name))
            .output()
            .expect("systemd-analyze (package systemd)");
        // systemd only warns (exit 0) about unknown keys or bad values: any output is a problem.
        assert!(out.status.success() && out.stderr.trim_ascii().is_empty(), "{unit}: {}", common::describe(&out));
    }
}

fn relflow(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relflow"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RELFLOW_DATA_DIR", std::env::temp_dir())
        .output()
        .unwrap()
}

#[test]
fn relflow_test_passes_on_the_examples() {
    let out = relflow(&common::repo_root().join("examples/relflow.toml"), &["test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::describe(&out));
    assert!(stdout.lines().any(|l| l == "test result: ok. 6 passed, 0 failed"), "{stdout}");
    assert!(stdout.contains("test playbook compose_finished.yml (syntax) ... ok"), "{stdout}");
}

/// A config in a temp dir that uses the examples' playbooks and messages.
fn examples_config(dir: &std::path::Path, rules: &str) -> std::path::PathBuf {
    let root = common::repo_root();
    let text = format!(
        "playbooks_dir = {:?}\n[ansible]\nplaybook_cmd = {:?}\nconfig = {:?}\ninventory = \"localhost,\"\n{rules}",
        root.join("examples/playbooks"),
        common::ansible_playbook(),
        root.join("examples/ansible.cfg"),
    )
    .replace("MESSAGES", &root.join("examples/messages").display().to_string());
    let path = dir.join("relflow.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_wrong_expectation_fails_naming_the_rule_the_message_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = examples_config(
        dir.path(),
        r#"
[[rule]]
name = "compose-finished"
topic = "org.fedoraproject.*.pungi.compose.status.change"
when = 'msg.status in ["FINISHED", "FINISHED_INCOMPLETE"]'
playbook = "compose_finished.yml"

[[rule.test]]
message = "MESSAGES/compose-started.json"
expect = "match"

[[rule.test]]
message = "MESSAGES/compose-finished.json"
expect = "match"
vars = { "msg.compose_id" = "Fedora-25-20161002.n.0" }
"#,
    );
    let out = relflow(&config, &["test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("test result: FAILED. 1 passed, 2 failed"), "{stdout}");
    let started =
        "---- compose-finished: MESSAGES/compose-started.json (expects match) ----\nexpected match, but topic \
                   matches; condition false\ncondition: msg.status in [\"FINISHED\", \"FINISHED_INCOMPLETE\"]"
            .replace("MESSAGES", &common::repo_root().join("examples/messages").display().to_string());
    assert!(stdout.contains(&started), "{stdout}");
    assert!(
        stdout.contains("`msg.compose_id`: expected \"Fedora-25-20161002.n.0\", got \"Fedora-24-20151208.n.7\""),
        "{stdout}"
    );

    let json: serde_json::Value = serde_json::from_slice(&relflow(&config, &["test", "--json"]).stdout).unwrap();
    assert_eq!((json["passed"].as_u64(), json["failed"].as_u64()), (Some(1), Some(2)));
    assert_eq!(json["tests"][0]["rule"], "compose-finished");
}

#[test]
fn check_flags_a_misspelt_key_with_a_did_you_mean_from_the_samples_and_broken_playbooks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.yml"), "- hosts: localhost\n  taks: []\n").unwrap();
    let config = examples_config(
        dir.path(),
        r#"
[[rule]]
name = "compose-finished"
topic = "org.fedoraproject.*.pungi.compose.status.change"
when = 'msg.stauts == "FINISHED"'
playbook = "compose_finished.yml"

[[rule]]
name = "koji-build"
topic = "org.fedoraproject.prod.buildsys.build.state.change"
when = 'msg.build_id > "5"'
playbook = "koji_build_complete.yml"
"#,
    );
    let out = relflow(&config, &["check"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success());
    assert!(
        stdout.contains(
            "warning: rule \"compose-finished\": `msg.stauts`: no sample of \
             org.fedoraproject.prod.pungi.compose.status.change has it; did you mean `status`?"
        ),
        "{stdout}"
    );
    assert!(stderr.contains("type mismatch: `>` does not apply to (int, string)"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&relflow(&config, &["check", "--json"]).stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["rule_checks"]["rules"][0]["matched"], 0);

    // A playbook ansible cannot parse fails `check --playbooks`.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("playbooks_dir = {:?}", common::repo_root().join("examples/playbooks")),
        &format!("playbooks_dir = {:?}", dir.path()),
    );
    std::fs::write(
        &config,
        text.replace("koji_build_complete.yml", "broken.yml").replace("compose_finished.yml", "broken.yml"),
    )
    .unwrap();
    let out = relflow(&config, &["check", "--playbooks"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("broken.yml: ansible-playbook --syntax-check failed"), "{stderr}");
    assert!(stderr.contains("taks"), "{stderr}");
}

#[test]
fn dry_run_explains_each_rule_and_warns_about_dict_method_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bodhi.yml"),
        "- hosts: localhost\n  tasks:\n    - debug: msg={{ msg.update.title }}\n",
    )
    .unwrap();
    let config = examples_config(
        dir.path(),
        r#"
[[rule]]
name = "compose-finished"
topic = "org.fedoraproject.*.pungi.compose.status.change"
when = 'msg.status == "FINISHED"'
playbook = "compose_finished.yml"

[[rule]]
name = "gnome-update"
topic = "org.fedoraproject.*.bodhi.update.#"
when = 'msg.update.builds.exists(b, b.nvr.startsWith("gnome-"))'
playbook = "BODHI"
"#
        .replace("BODHI", &dir.path().join("bodhi.yml").display().to_string())
        .as_str(),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        &format!("playbooks_dir = {:?}", common::repo_root().join("examples/playbooks")),
        &format!("playbooks_dir = {:?}", dir.path()),
    );
    std::fs::write(&config, text.replace(&dir.path().join("bodhi.yml").display().to_string(), "bodhi.yml")).unwrap();

    let comment = common::fixture("org.fedoraproject.prod.bodhi.update.comment.json");
    let request = common::fixture("org.fedoraproject.prod.bodhi.update.request.testing.json");
    let out = relflow(&config, &["dry-run", "--rules-only", comment.to_str().unwrap(), request.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::describe(&out));
    assert!(stdout.contains("compose-finished  topic does not match"), "{stdout}");
    assert!(
        stdout.contains("gnome-update      topic matches; condition false: the message has no `msg.update`"),
        "{stdout}"
    );
    assert!(stdout.contains("gnome-update      matches (topic; condition true)"), "{stdout}");
    assert!(!stdout.contains("extra vars"), "--rules-only: {stdout}");
    assert!(stdout.contains("write `msg['update']` (bodhi.yml writes `msg.update`)"), "{stdout}");

    let json: serde_json::Value =
        serde_json::from_slice(&relflow(&config, &["dry-run", "--json", comment.to_str().unwrap()]).stdout).unwrap();
    assert_eq!(json[0]["rules"][1]["missing_key"], "msg.update");
    assert_eq!(json[0]["rules"][1]["condition"], "missing");
}
