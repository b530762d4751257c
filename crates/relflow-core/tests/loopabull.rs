//! Loading loopabull YAML: strict keys, exact routing keys, the `relflow:`
//! extension, compat on.

use std::path::PathBuf;
use std::time::Duration;

use relflow_core::{match_rules, Config, Message};

fn load(yaml: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("loopabull.yml");
    std::fs::write(&path, yaml).unwrap();
    Config::load(&path).map_err(|e| e.to_string())
}

const BASE: &str = "ansible:\n  playbooks_dir: playbooks\n";

fn message(topic: &str) -> Message {
    Message::new(topic, serde_json::Map::new(), "test").unwrap()
}

#[test]
fn a_typo_is_an_error_with_the_key_its_path_and_a_did_you_mean() {
    let e = load(&format!("routing_key:\n  - org.fedoraproject.prod.buildsys.tag\n{BASE}")).unwrap_err();
    assert!(e.contains("unknown key `routing_key` at the top level; did you mean `routing_keys`?"), "{e}");
    let e = load(&format!("routing_keys: [a.b]\n{BASE}plugins:\n  translater:\n    name: rkname\n")).unwrap_err();
    assert!(e.contains("unknown key `translater` under `plugins`; did you mean `translator`?"), "{e}");
    let e = load(&format!("routing_keys: [a.b]\n{BASE}  inventory: hosts\n")).unwrap_err();
    assert!(e.contains("unknown key `inventory` under `ansible`; did you mean `inventory_path`?"), "{e}");
}

#[test]
fn keys_relflow_does_not_use_load_with_a_warning_saying_what_to_do() {
    let c = load(&format!(
        "loglevel: debug\nplugins:\n  looper:\n    name: fedmsgrabbitmq\n    rabbitmq: {{port: 5672}}\n\
         routing_keys: [a.b]\n{BASE}"
    ))
    .unwrap();
    assert!(
        c.warnings.iter().any(|w| w.contains("`loglevel` is not used") && w.contains("RELFLOW_LOG")),
        "{:?}",
        c.warnings
    );
    assert!(c.warnings.iter().any(|w| w.contains("looper `fedmsgrabbitmq` (with `rabbitmq`)")), "{:?}", c.warnings);
    assert!(c.sources.is_empty() && c.translated.is_empty(), "no broker host: nothing to translate");
}

#[test]
fn a_looper_with_its_broker_is_translated_into_a_source() {
    let c = load(&format!(
        "plugins:\n  looper:\n    name: rabbitmq\n    rabbitmq: {{host: localhost}}\n    \
         credentials: {{username: u, password: secret}}\nrouting_keys: [a.b]\n{BASE}"
    ))
    .unwrap();
    assert_eq!(c.sources.len(), 1);
    assert!(c.warnings.iter().all(|w| !w.contains("looper")), "{:?}", c.warnings);
    let [t] = &c.translated[..] else { panic!("{:?}", c.translated) };
    assert!(t.contains("[[source]] type = \"amqp\"") && t.contains("localhost") && t.contains("[\"a.b\"]"), "{t}");
    assert!(!t.contains("secret"), "the password is redacted: {t}");
}

#[test]
fn routing_keys_are_exact_strings_as_in_loopabull() {
    let c = load(&format!("routing_keys:\n  - org.fedoraproject.*.buildsys.tag\n  - a.b\n{BASE}")).unwrap();
    assert!(match_rules(&c.rules, &message("org.fedoraproject.prod.buildsys.tag")).rules.is_empty(), "`*` is literal");
    assert_eq!(match_rules(&c.rules, &message("a.b")).rules.len(), 1);
    assert!(match_rules(&c.rules, &message("a.b.c")).rules.is_empty());
    let w = c.warnings.iter().find(|w| w.contains("org.fedoraproject.*.buildsys.tag")).expect("a warning");
    assert!(w.contains("exact strings"), "{w}");
}

#[test]
fn compat_is_on_and_the_relflow_extension_sets_retries_timeout_and_concurrency() {
    let c = load(&format!("routing_keys: [a.b, c.d]\n{BASE}")).unwrap();
    assert!(c.compat.loopabull);
    assert_eq!((c.rules[0].retries, c.rules[0].timeout), (0, Duration::from_secs(3600)), "the defaults");
    assert_eq!(c.playbook_cwd(), PathBuf::from("/"), "loopabull's working directory");
    let c = load(&format!(
        "routing_keys: [a.b, c.d]\n{BASE}relflow:\n  retries: 3\n  retry_delay: 30s\n  timeout: 6h\n  concurrency: 1\n"
    ))
    .unwrap();
    assert!(c.rules.iter().all(|r| r.retries == 3 && r.timeout == Duration::from_secs(6 * 3600)));
    assert_eq!((c.worker.concurrency, c.worker.retry_delay), (1, Duration::from_secs(30)));
    let e = load(&format!("routing_keys: [a.b]\n{BASE}relflow:\n  concurrency: 0\n")).unwrap_err();
    assert!(e.contains("relflow.concurrency must be at least 1"), "{e}");
}
