//! Rules and config: matching, conditions, and refusing what is unsafe.

use std::path::{Path, PathBuf};

use relflow_core::condition::Outcome;
use relflow_core::config::{PlaybookError, PlaybookSpec};
use relflow_core::loopabull::Translator;
use relflow_core::{explain_rules, match_rules, Config, ConfigError, Message};
use serde_json::json;

fn msg(topic: &str, body: serde_json::Value) -> Message {
    Message::new(topic, body.as_object().unwrap().clone(), "test").unwrap()
}

/// Writes `config` (TOML or YAML by `name`) and the given playbooks into a temp dir.
fn setup(name: &str, config: &str, playbooks: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for p in playbooks {
        let path = dir.path().join("playbooks").join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "- hosts: localhost\n  tasks: []\n").unwrap();
    }
    let path = dir.path().join(name);
    std::fs::write(&path, config).unwrap();
    (dir, path)
}

const RULES: &str = r##"
playbooks_dir = "playbooks"

[[rule]]
name = "compose-finished"
topic = "org.fedoraproject.*.pungi.compose.status.change"
when = 'msg.status in ["FINISHED", "FINISHED_INCOMPLETE"]'
playbook = "compose.yml"
retries = 2
timeout = "30m"

[[rule]]
name = "koji-complete"
topic = "org.fedoraproject.prod.buildsys.build.state.change"
when = "msg.new == 1 && msg.owner != 'releng'"
playbook = "sub/koji.yml"

[[rule]]
name = "everything"
topic = "#"
playbook = "compose.yml"
"##;

#[test]
fn messages_match_by_topic_and_condition_and_can_match_several_rules() {
    let (_d, path) = setup("relflow.toml", RULES, &["compose.yml", "sub/koji.yml"]);
    let config = Config::load(&path).unwrap();
    let names = |m: &Message| match_rules(&config.rules, m).rules.iter().map(|r| r.name.clone()).collect::<Vec<_>>();

    let finished = msg("org.fedoraproject.prod.pungi.compose.status.change", json!({"status": "FINISHED"}));
    assert_eq!(names(&finished), ["compose-finished", "everything"]);
    let started = msg("org.fedoraproject.prod.pungi.compose.status.change", json!({"status": "STARTED"}));
    assert_eq!(names(&started), ["everything"]);
    let build = msg("org.fedoraproject.prod.buildsys.build.state.change", json!({"new": 1, "owner": "bob"}));
    assert_eq!(names(&build), ["koji-complete", "everything"]);

    let rule = &config.rules[0];
    assert_eq!((rule.retries, rule.timeout.as_secs()), (2, 1800));
    assert_eq!(config.rules[1].retries, 0, "default: no retries");
}

#[test]
fn a_missing_key_is_no_match_and_a_type_error_is_reported_not_fatal() {
    let (_d, path) = setup("relflow.toml", RULES, &["compose.yml", "sub/koji.yml"]);
    let config = Config::load(&path).unwrap();
    let no_status = msg("org.fedoraproject.prod.pungi.compose.status.change", json!({"other": 1}));
    let m = match_rules(&config.rules, &no_status);
    assert_eq!(m.rules.len(), 1, "only `everything`");
    assert!(m.errors.is_empty(), "a missing key is a plain no-match: {:?}", m.errors);

    // `new` is a string here, so `msg.new == 1` compares string to int.
    let odd = msg("org.fedoraproject.prod.buildsys.build.state.change", json!({"new": [1], "owner": 5}));
    let m = match_rules(&config.rules, &odd);
    assert_eq!(m.rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["everything"]);
}

#[test]
fn explain_says_topic_condition_missing_key_or_error_per_rule() {
    let (_d, path) = setup("relflow.toml", RULES, &["compose.yml", "sub/koji.yml"]);
    let config = Config::load(&path).unwrap();
    let verdicts = |m: &Message| {
        explain_rules(&config.rules, m).into_iter().map(|(r, v)| (r.name.as_str(), v.condition)).collect::<Vec<_>>()
    };
    let no_status = msg("org.fedoraproject.prod.pungi.compose.status.change", json!({"other": 1}));
    assert_eq!(
        verdicts(&no_status),
        [
            ("compose-finished", Some(Outcome::Missing("msg.status".into()))),
            ("koji-complete", None),
            ("everything", None)
        ]
    );
    let all = explain_rules(&config.rules, &no_status);
    assert!(all[0].1.to_string().contains("has(msg.status)"), "{}", all[0].1);
    assert_eq!(all[1].1.to_string(), "topic does not match");
    assert!(!all[1].1.is_match() && all[2].1.is_match());

    let odd = msg("org.fedoraproject.prod.buildsys.build.state.change", json!({"new": [1], "owner": "bob"}));
    assert!(matches!(&verdicts(&odd)[1].1, Some(Outcome::False | Outcome::Error(_))));
}

#[test]
fn conditions_see_topic_and_headers() {
    let cfg = r##"
playbooks_dir = "p"
[[rule]]
name = "h"
topic = "#"
when = "headers.fedora_messaging_schema == 'x.V1' && topic.endsWith('.sign')"
playbook = "a.yml"
"##;
    let (_d, path) = setup("relflow.toml", cfg, &[]);
    let config = Config::load(&path).unwrap();
    let mut m = msg("org.fedoraproject.prod.buildsys.rpm.sign", json!({}));
    assert!(match_rules(&config.rules, &m).rules.is_empty());
    m.headers.insert("fedora_messaging_schema".into(), json!("x.V1"));
    assert_eq!(match_rules(&config.rules, &m).rules.len(), 1);
}

fn load_err(cfg: &str) -> String {
    let (_d, path) = setup("relflow.toml", cfg, &[]);
    match Config::load(&path) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("config must be refused:\n{cfg}"),
    }
}

fn one_rule(fields: &str) -> String {
    format!("playbooks_dir = \"p\"\n[[rule]]\nname = \"r\"\n{fields}\n")
}

#[test]
fn bad_configs_are_refused_with_a_clear_reason() {
    let e = load_err(&one_rule("topic = \"#\"\nplaybook = \"../../x.yml\""));
    assert!(e.contains("must not contain `..`"), "{e}");
    let e = load_err(&one_rule("topic = \"#\"\nplaybook = \"/etc/passwd\""));
    assert!(e.contains("relative"), "{e}");
    let e = load_err(&one_rule("topic = \"a.b*\"\nplaybook = \"x.yml\""));
    assert!(e.contains("whole words"), "{e}");
    let e = load_err(&one_rule("topic = \"#\"\nwhen = \"msg.status ==\"\nplaybook = \"x.yml\""));
    assert!(e.contains("does not parse"), "{e}");
    let e = load_err(&one_rule("topic = \"#\"\nwhen = \"mgs.status == 'x'\"\nplaybook = \"x.yml\""));
    assert!(e.contains("uses `mgs`"), "{e}");
    let e = load_err(&one_rule("topic = \"#\"\nplaybok = \"x.yml\""));
    assert!(e.contains("unknown key `playbok` in [[rule]]") && e.contains("did you mean `playbook`?"), "typos: {e}");
    let e = load_err(&one_rule("topic = \"#\"\nwhen = \"msg.tag.startswith('f')\"\nplaybook = \"x.yml\""));
    assert!(e.contains("calls `startswith`") && e.contains("did you mean `startsWith`?"), "{e}");
    let e = load_err(&one_rule("topic = \"#\"\nplaybook = \"x.yml\"\n[[rule.test]]\nmessage = \"m.json\"\nexpect = \"no-match\"\nvars = { topic = \"x\" }"));
    assert!(e.contains("need expect = \"match\""), "{e}");
    let e = load_err("playbooks_dir = \"p\"\n[[rule]]\nname = \"a\"\ntopic = \"#\"\nplaybook = \"x.yml\"\n[[rule]]\nname = \"a\"\ntopic = \"#\"\nplaybook = \"y.yml\"\n");
    assert!(e.contains("names must be unique"), "{e}");
    let e = load_err(&one_rule("topic = \"#\"\nplaybook = \"x.yml\"\ntimeout = \"soon\""));
    assert!(e.contains("not valid TOML"), "{e}");
    let missing = Config::load(Path::new("/nonexistent/relflow.toml")).unwrap_err();
    assert!(matches!(missing, ConfigError::Read { .. }) && missing.to_string().contains("--config"));
}

#[test]
fn playbook_path_refuses_missing_files_and_symlinks_out() {
    let cfg = one_rule("topic = \"#\"\nplaybook = \"link.yml\"");
    let (dir, path) = setup("relflow.toml", &cfg, &[]);
    let config = Config::load(&path).unwrap();
    let rule = &config.rules[0];
    assert!(matches!(config.playbook_path(rule, "a.b"), Err(PlaybookError::Missing(_))));
    std::fs::create_dir_all(dir.path().join("p")).unwrap();
    std::fs::write(dir.path().join("outside.yml"), "[]").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.yml"), dir.path().join("p/link.yml")).unwrap();
    assert!(matches!(config.playbook_path(rule, "a.b"), Err(PlaybookError::OutsideDir { .. })));
}

#[test]
fn loopabull_config_loads_and_routes_like_loopabull() {
    let yaml = r#"
loglevel: info
plugins:
  looper:
    name: fedmsgrabbitmq
  translator:
    name: rkdirectory
routing_keys:
  - org.fedoraproject.prod.buildsys.build.state.change
  - org.centos.prod.ci.dist-git-pr.test.complete
ansible:
  playbooks_dir: playbooks
  cfg_file_path: /etc/ansible/ansible.cfg
  playbook_cmd: /usr/bin/ansible-playbook
"#;
    let pb = "org/fedoraproject/prod/buildsys/build/state/change.yml";
    let (dir, path) = setup("loopabull.yml", yaml, &[pb]);
    let config = Config::load(&path).unwrap();
    assert_eq!(config.rules.len(), 2);
    assert_eq!(config.ansible.playbook_cmd, Path::new("/usr/bin/ansible-playbook"));
    assert_eq!(config.ansible.config.as_deref(), Some(Path::new("/etc/ansible/ansible.cfg")));
    assert!(config.warnings.iter().any(|w| w.contains("fedmsgrabbitmq")));
    let build = msg("org.fedoraproject.prod.buildsys.build.state.change", json!({}));
    let m = match_rules(&config.rules, &build);
    assert_eq!(m.rules.len(), 1);
    let resolved = config.playbook_path(m.rules[0], &build.topic).unwrap();
    assert_eq!(resolved, dir.path().join("playbooks").join(pb).canonicalize().unwrap());
    assert!(match_rules(&config.rules, &msg("org.fedoraproject.prod.buildsys.tag", json!({}))).rules.is_empty());
}

#[test]
fn loopabull_rkname_and_all() {
    let yaml = "plugins:\n  translator:\n    name: rkname\nrouting_keys: [all]\nansible:\n  playbooks_dir: pb\n  cfg_file_path: ansible.cfg\n  playbook_cmd: ansible-playbook\n";
    let (_dir, path) = setup("loopabull.yaml", yaml, &[]);
    let config = Config::load(&path).unwrap();
    assert_eq!(config.rules.len(), 1);
    assert_eq!(config.rules[0].playbook, PlaybookSpec::FromTopic(Translator::Rkname));
    let any = msg("org.fedoraproject.prod.bodhi.update.comment", json!({}));
    assert_eq!(match_rules(&config.rules, &any).rules.len(), 1, "`all` routes every topic");
    assert_eq!(Translator::Rkname.translate(&any.topic), Path::new("org.fedoraproject.prod.bodhi.update.comment.yml"));
    assert_eq!(Translator::Rkdirectory.translate("a.b.c"), Path::new("a/b/c.yml"));
    // Older loopabull spelling.
    let old = "path_translator: rkdirectory\nplugin: fedmsg\nrouting_keys: [a.b.c]\nansible:\n  playbooks_dir: pb\n  inventory_path: hosts\n";
    let (dir, path) = setup("old.yml", old, &[]);
    let config = Config::load(&path).unwrap();
    assert_eq!(config.rules[0].playbook, PlaybookSpec::File("a/b/c.yml".into()));
    let beside_the_config = std::path::absolute(dir.path().join("hosts")).unwrap();
    assert_eq!(config.ansible.inventory.as_deref(), Some(beside_the_config.to_str().unwrap()));
}

#[test]
fn inventories_are_relative_to_the_config_file_and_host_lists_stay() {
    let cfg = "playbooks_dir = \"playbooks\"\n[ansible]\ninventory = \"inventory/hosts.ini\"\n\
               [[rule]]\nname = \"a\"\ntopic = \"#\"\nplaybook = \"x.yml\"\ninventory = \"compose.ini\"\n\
               [[rule]]\nname = \"b\"\ntopic = \"#\"\nplaybook = \"x.yml\"\ninventory = \"h1.example.org,h2\"\n\
               [[rule]]\nname = \"c\"\ntopic = \"#\"\nplaybook = \"x.yml\"\ninventory = \"/etc/ansible/hosts\"\n";
    let (dir, path) = setup("relflow.toml", cfg, &[]);
    let config = Config::load(&path).unwrap();
    let at = |rel: &str| std::path::absolute(dir.path().join(rel)).unwrap().display().to_string();
    assert_eq!(config.ansible.inventory, Some(at("inventory/hosts.ini")), "not relative to playbooks_dir");
    let rules: Vec<_> = config.rules.iter().map(|r| r.inventory.clone().unwrap()).collect();
    assert_eq!(rules, [at("compose.ini"), "h1.example.org,h2".into(), "/etc/ansible/hosts".into()]);
}

#[test]
fn allow_no_hosts_is_off_unless_a_rule_says_so() {
    let cfg = "playbooks_dir = \"p\"\n[[rule]]\nname = \"strict\"\ntopic = \"#\"\nplaybook = \"x.yml\"\n\
               [[rule]]\nname = \"lenient\"\ntopic = \"#\"\nplaybook = \"x.yml\"\nallow_no_hosts = true\n";
    let (_dir, path) = setup("relflow.toml", cfg, &[]);
    let config = Config::load(&path).unwrap();
    let allowed: Vec<_> = config.rules.iter().map(|r| (r.name.as_str(), r.allow_no_hosts)).collect();
    assert_eq!(allowed, [("strict", false), ("lenient", true)]);
}

#[test]
fn backoff_doubles_and_is_capped() {
    let w = relflow_core::config::WorkerConfig {
        retry_delay: std::time::Duration::from_secs(10),
        retry_delay_max: std::time::Duration::from_secs(60),
        ..Default::default()
    };
    let secs: Vec<u64> = (1..=5).map(|a| w.backoff(a).as_secs()).collect();
    assert_eq!(secs, [10, 20, 40, 60, 60]);
}

fn _config_is_shareable_across_worker_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Config>();
}

#[test]
fn rule_tests_and_check_samples_load_relative_to_the_config() {
    let cfg = r##"
playbooks_dir = "p"
[check]
samples = ["samples/*.json"]
shipped_samples = false

[[rule]]
name = "compose"
topic = "#"
playbook = "a.yml"

[[rule.test]]
message = "samples/finished.json"
expect = "match"
vars = { "msg.compose_id" = "Fedora-24-20151208.n.7", "msg.count" = 3 }

[[rule.test]]
message = "samples/started.json"
expect = "no-match"
"##;
    let (dir, path) = setup("relflow.toml", cfg, &[]);
    let config = Config::load(&path).unwrap();
    let base = std::path::absolute(dir.path()).unwrap();
    assert_eq!(config.check.samples, [base.join("samples/*.json").to_string_lossy()]);
    assert!(!config.check.shipped_samples);
    let tests = &config.rules[0].tests;
    assert_eq!(tests.len(), 2);
    assert_eq!(tests[0].message, base.join("samples/finished.json"));
    assert_eq!(tests[0].expect, relflow_core::Expect::Match);
    assert_eq!(tests[0].vars["msg.count"], json!(3));
    assert_eq!(tests[1].expect, relflow_core::Expect::NoMatch);
}

#[test]
fn an_approval_gate_is_read_and_checked() {
    let gated = |approval: &str| {
        format!("playbooks_dir = \"playbooks\"\n[[rule]]\nname = \"push\"\ntopic = \"a.b\"\nplaybook = \"p.yml\"\n{approval}\n")
    };
    let (_d, path) = setup("relflow.toml", &gated("approval = { approvers = [\"releng\"] }"), &["p.yml"]);
    let config = Config::load(&path).unwrap();
    let approval = config.rules[0].approval.as_ref().unwrap();
    assert_eq!(approval.expires, std::time::Duration::from_secs(24 * 3600), "expires defaults to 24h");
    assert!(approval.allows("anyone", &["releng".into()]));
    for (bad, why) in [
        ("approval = { approvers = [] }", "names nobody"),
        ("approval = { approvers = [\"a\"], expires = \"0s\" }", "more than 0s"),
        ("approval = { approvers = [\"a\"], expire = \"1h\" }", "did you mean `expires`"),
        ("approval = { approvers = [\"a\"] }\ncoalesce = { key = \"msg.k\", window = \"1s\" }", "coalesce or join"),
    ] {
        let (_d, path) = setup("relflow.toml", &gated(bad), &["p.yml"]);
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
}
