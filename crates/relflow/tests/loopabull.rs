//! A loopabull deployment moved to relflow unchanged: a YAML shaped like
//! Fedora's production config (roles/loopabull), loopabull-era playbooks,
//! the real signed fedmsg fixtures, and the variables loopabull's fedmsg
//! looper gave those playbooks (the whole envelope, top level).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture, play};
use serde_json::{Map, Value};

/// The four signed 2017 messages and the routing keys Fedora's config lists.
const SIGNED: [&str; 4] = [
    "org.fedoraproject.prod.buildsys.build.state.change--signed.json",
    "org.fedoraproject.prod.buildsys.tag--signed.json",
    "org.fedoraproject.prod.buildsys.untag--signed.json",
    "org.fedoraproject.prod.buildsys.rpm.sign--signed.json",
];

/// Every top-level name loopabull's fedmsg looper could pass.
const ENVELOPE: [&str; 9] =
    ["topic", "msg", "msg_id", "timestamp", "i", "username", "crypto", "signature", "certificate"];

struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Site {
    /// `plugins.looper` with only a name (as Fedora rendered it), rkname,
    /// the routing keys, `cfg_file_path` and `playbook_cmd`.
    fn new(routing_keys: &[&str]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
        let cfg = dir.path().join("ansible.cfg");
        std::fs::write(&cfg, "[defaults]\ninterpreter_python = auto_silent\n").unwrap();
        let keys: String = routing_keys.iter().map(|k| format!("  - {k}\n")).collect();
        let yaml = format!(
            "plugins:\n  looper:\n    name: fedmsgrabbitmq\n  translator:\n    name: rkname\nrouting_keys:\n{keys}\
             ansible:\n  playbooks_dir: {}\n  cfg_file_path: {}\n  playbook_cmd: {}\n",
            dir.path().join("playbooks").display(),
            cfg.display(),
            common::ansible_playbook().display()
        );
        let config = dir.path().join("loopabull.yml");
        std::fs::write(&config, yaml).unwrap();
        Site { dir, config }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn relflow(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_relflow"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("RELFLOW_DATA_DIR", self.path("data"))
            .env_remove("RELFLOW_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "relflow {args:?}: {}", common::describe(&out));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// A loopabull-era playbook: it writes what it sees of each envelope name
/// (or `UNDEFINED`), `{{ timestamp }}`/`{{ username }}` as templated text,
/// a `msg.*` field, and its working directory (that of the process running
/// the play; the pipe lookup itself runs in the playbook's dir).
fn recording_playbook(out: &Path) -> String {
    let fields: Vec<String> = ENVELOPE.iter().map(|n| format!("'{n}': {n} | default('UNDEFINED')")).collect();
    play(&format!(
        "    - copy:\n        dest: \"{dir}/{{{{ topic }}}}.json\"\n        content: \"{{{{ {{{fields}}} | to_json }}}}\"\n\
         \x20   - copy:\n        dest: \"{dir}/{{{{ topic }}}}.txt\"\n        \
         content: \"{{{{ timestamp }}}} {{{{ username }}}} {{{{ msg.owner | default(msg.user | default('')) }}}} \
         {{{{ lookup('pipe', 'readlink /proc/$PPID/cwd') }}}}\"\n",
        dir = out.display(),
        fields = fields.join(", ")
    ))
}

fn topic_of(name: &str) -> &str {
    name.trim_end_matches(".json").split("--").next().unwrap()
}

fn envelope(name: &str) -> Map<String, Value> {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// What loopabull's fedmsg looper passed: `yield (topic, dict(msg))`, the
/// whole envelope, each key a top-level variable.
fn loopabull_vars(env: &Map<String, Value>) -> Value {
    ENVELOPE.iter().map(|n| (n.to_string(), env.get(*n).cloned().unwrap_or("UNDEFINED".into()))).collect()
}

/// Python's `str()` of a JSON number, as `{{ timestamp }}` renders it.
fn python_str(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() && n.as_f64().unwrap().fract() == 0.0 => format!("{:.1}", n.as_f64().unwrap()),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn fedora_production_config_gives_playbooks_what_loopabull_gave() {
    let keys: Vec<&str> = SIGNED.iter().map(|n| topic_of(n)).collect();
    let site = Site::new(&keys);
    let out = site.path("seen");
    std::fs::create_dir_all(&out).unwrap();
    for key in &keys {
        std::fs::write(site.path("playbooks").join(format!("{key}.yml")), recording_playbook(&out)).unwrap();
    }
    site.relflow(&["check"]);
    for name in SIGNED {
        site.relflow(&["publish", fixture(name).to_str().unwrap()]);
    }
    site.relflow(&["worker", "--drain"]);
    let runs: Value = serde_json::from_str(&site.relflow(&["runs", "list", "--json", "--limit", "0"])).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 4, "{runs:#}");
    assert!(runs.as_array().unwrap().iter().all(|r| r["status"] == "succeeded"), "{runs:#}");

    for name in SIGNED {
        let env = envelope(name);
        let topic = topic_of(name);
        let seen: Value = serde_json::from_str(&std::fs::read_to_string(out.join(format!("{topic}.json"))).unwrap())
            .unwrap_or_else(|e| panic!("{topic}: {e}"));
        assert_eq!(seen, loopabull_vars(&env), "{topic}: the variables loopabull's fedmsg looper gave");
        let body = env["msg"].as_object().unwrap();
        let field = body.get("owner").or(body.get("user")).map(python_str).unwrap_or_default();
        let text = std::fs::read_to_string(out.join(format!("{topic}.txt"))).unwrap();
        let want = format!("{} {} {field} /", python_str(&env["timestamp"]), python_str(&env["username"]));
        assert_eq!(text, want, "{topic}: templated as under loopabull, run from /");
    }
}

#[test]
fn msg_id_is_undefined_when_the_message_had_none() {
    let name = "org.fedoraproject.prod.buildsys.repo.done.json";
    assert!(!envelope(name).contains_key("msg_id"), "the fixture has no msg_id");
    let site = Site::new(&[topic_of(name)]);
    std::fs::write(site.path(&format!("playbooks/{}.yml", topic_of(name))), play("    - debug: var=msg_id\n")).unwrap();
    let report: Value =
        serde_json::from_str(&site.relflow(&["dry-run", "--json", fixture(name).to_str().unwrap()])).unwrap();
    let vars = report[0]["runs"][0]["extra_vars"].as_object().unwrap();
    assert!(!vars.contains_key("msg_id"), "{vars:#?}");
    assert!(vars["relflow"]["msg_id"].as_str().unwrap().starts_with("sha256:"), "relflow's own id stays reachable");
    assert_eq!(vars["timestamp"], envelope(name)["timestamp"]);
    assert_eq!(vars["username"], "apache");
}

#[test]
fn a_routing_key_typo_makes_check_fail_with_a_did_you_mean() {
    let site = Site::new(&["org.fedoraproject.prod.buildsys.tag"]);
    let text = std::fs::read_to_string(&site.config).unwrap().replace("routing_keys:", "routing_key:");
    std::fs::write(&site.config, text).unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_relflow")).arg("--config").arg(&site.config).arg("check").output().unwrap();
    assert!(!out.status.success(), "{}", common::describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `routing_key` at the top level; did you mean `routing_keys`?"), "{err}");
}
