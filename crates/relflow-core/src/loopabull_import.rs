//! `relflow import loopabull FILE.yml`: the relflow.toml that does what a
//! loopabull YAML does.
//!
//! It renders the [`Config`] the YAML loads as (`loopabull.rs` is the one
//! reading of the YAML), so the TOML cannot disagree with it: one rule per
//! routing key with the same playbook path, the ansible settings, the
//! `relflow:` extension, the translated looper as a `[[source]]`, and
//! `[compat] loopabull = true`. What has no TOML equivalent is a comment.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::config::{PlaybookSpec, SourceConfig, WorkerConfig};
use crate::rules::Rule;
use crate::{Config, TopicPattern};

/// The TOML text, comments included. `config` must come from a loopabull
/// YAML ([`Config::load`] of a `.yml`).
pub fn to_toml(config: &Config) -> String {
    let mut out = format!(
        "# relflow.toml written by `relflow import loopabull {}`.\n\
         # [compat] loopabull keeps what loopabull gave playbooks (README: \"Coming from loopabull\").\n",
        config.path.display()
    );
    for w in &config.warnings {
        let _ = writeln!(out, "#\n# note: {}", w.replace('\n', "\n# "));
    }
    let _ = writeln!(out, "\nplaybooks_dir = {}", quote(&config.playbooks_dir.display().to_string()));
    out.push_str(&ansible(config));
    out.push_str(&worker(&config.worker));
    out.push_str("\n[compat]\nloopabull = true\n");
    out.push_str(&sources(&config.sources));
    for rule in &config.rules {
        out.push_str(&rule_toml(rule));
    }
    out
}

fn ansible(config: &Config) -> String {
    let a = &config.ansible;
    let mut out = format!("\n[ansible]\nplaybook_cmd = {}\n", quote(&a.playbook_cmd.display().to_string()));
    if let Some(cfg) = &a.config {
        let _ = writeln!(out, "config = {}   # loopabull's cfg_file_path", quote(&cfg.display().to_string()));
    }
    if let Some(inventory) = &a.inventory {
        let _ = writeln!(out, "inventory = {}   # loopabull's inventory_path", quote(inventory));
    }
    out
}

/// Only what the YAML's `relflow:` changed; the rest keeps relflow's defaults.
fn worker(w: &WorkerConfig) -> String {
    let default = WorkerConfig::default();
    let mut lines = String::new();
    if w.concurrency != default.concurrency {
        let _ = writeln!(lines, "concurrency = {}", w.concurrency);
    }
    if w.retry_delay != default.retry_delay {
        let _ = writeln!(lines, "retry_delay = {}", quote(&duration(w.retry_delay)));
    }
    if lines.is_empty() {
        return lines;
    }
    format!("\n[worker]\n{lines}")
}

fn sources(sources: &[SourceConfig]) -> String {
    #[derive(Serialize)]
    struct Sources<'a> {
        source: &'a [SourceConfig],
    }
    if sources.is_empty() {
        return String::new();
    }
    match toml::to_string(&Sources { source: sources }) {
        Ok(text) => format!("\n# loopabull's looper settings (plugins.looper); run it with `relflow bridge`.\n{text}"),
        Err(e) => format!("\n# the looper's settings could not be written as TOML: {e}\n"),
    }
}

fn rule_toml(rule: &Rule) -> String {
    let PlaybookSpec::File(playbook) = &rule.playbook else {
        return "\n# routing_keys: [all] (every topic, the playbook named after it) has no relflow.toml \
                equivalent:\n# keep the loopabull YAML as the config, or write one [[rule]] per topic.\n"
            .into();
    };
    let mut out = format!("\n[[rule]]\nname = {}\n", quote(&rule.name));
    let key = rule.topic.as_str();
    // A TOML topic is a pattern; a routing key that is not a plain one
    // (a literal `*` or `#`, an empty word) is matched as a string instead.
    if TopicPattern::parse(key).is_ok() && !key.contains(['*', '#']) {
        let _ = writeln!(out, "topic = {}", quote(key));
    } else {
        let when = format!("topic == {}", serde_json::Value::from(key));
        let _ =
            writeln!(out, "topic = \"#\"   # loopabull compared {key:?} as an exact string\nwhen = {}", quote(&when));
    }
    let _ = writeln!(out, "playbook = {}", quote(&playbook.display().to_string()));
    let _ = writeln!(out, "timeout = {}", quote(&duration(rule.timeout)));
    let _ = writeln!(out, "retries = {}", rule.retries);
    out
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn duration(d: Duration) -> String {
    humantime_serde::re::humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dir: &std::path::Path, yaml: &str) -> Config {
        let path = dir.join("loopabull.yml");
        std::fs::write(&path, yaml).unwrap();
        Config::load(&path).unwrap()
    }

    #[test]
    fn the_toml_loads_as_the_same_rules_settings_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = load(
            dir.path(),
            "loglevel: info\nrouting_keys: [a.b.c, 'x.*.y', 'we\"ird..key']\nplugins:\n  translator: {name: rkdirectory}\n  \
             looper:\n    name: rabbitmq\n    rabbitmq: {host: localhost, virtual_host: /v}\n    \
             credentials: {username: u, password: p}\nansible:\n  playbooks_dir: books\n  cfg_file_path: ansible.cfg\n  \
             playbook_cmd: /usr/bin/ansible-playbook\n  inventory_path: hosts\n\
             relflow: {retries: 3, retry_delay: 1m, timeout: 6h, concurrency: 1}\n",
        );
        let text = to_toml(&yaml);
        let toml = Config::from_toml(&dir.path().join("relflow.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(text.contains("# note: `loglevel` is not used"), "{text}");
        assert!(toml.compat.loopabull);
        assert_eq!(toml.playbooks_dir, yaml.playbooks_dir);
        assert_eq!(
            (&toml.ansible.playbook_cmd, &toml.ansible.config),
            (&yaml.ansible.playbook_cmd, &yaml.ansible.config)
        );
        assert_eq!(toml.ansible.inventory, yaml.ansible.inventory);
        assert_eq!((toml.worker.concurrency, toml.worker.retry_delay), (1, Duration::from_secs(60)));
        assert_eq!(toml.rules.len(), 3);
        for (t, y) in toml.rules.iter().zip(&yaml.rules) {
            assert_eq!((&t.name, &t.playbook, t.timeout, t.retries), (&y.name, &y.playbook, y.timeout, y.retries));
        }
        for topic in ["a.b.c", "x.*.y", "x.z.y", "we\"ird..key", "a.b"] {
            let Ok(msg) = crate::Message::new(topic, serde_json::Map::new(), "test") else { continue };
            let names = |c: &Config| -> Vec<String> {
                crate::match_rules(&c.rules, &msg).rules.iter().map(|r| r.name.clone()).collect()
            };
            assert_eq!(names(&toml), names(&yaml), "topic {topic}\n{text}");
        }
        let url = |c: &Config| match &c.sources[..] {
            [SourceConfig::Amqp(a)] => a.url.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(url(&toml), url(&yaml));
        assert_eq!(url(&yaml), "amqp://u:p@localhost/%2Fv");
    }

    #[test]
    fn all_has_no_toml_equivalent_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let text = to_toml(&load(dir.path(), "routing_keys: [all]\nansible: {playbooks_dir: books}\n"));
        assert!(text.contains("has no relflow.toml"), "{text}");
        assert!(!text.contains("\n[[rule]]"), "{text}");
    }
}
