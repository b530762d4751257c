//! A loopabull deployment moved to relflow unchanged: a YAML shaped like
//! Fedora's production config (roles/loopabull), loopabull-era playbooks,
//! the real signed fedmsg fixtures, and the variables loopabull's fedmsg
//! looper gave those playbooks (the whole envelope, top level).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture, play};
use serde_json::{json, Map, Value};

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
        self.relflow_with(&self.config, args)
    }

    /// `relflow --config CONFIG ARGS`, which must succeed; its stdout.
    fn relflow_with(&self, config: &Path, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_relflow"))
            .arg("--config")
            .arg(config)
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

/// Every shipped fixture message (fedmsg envelopes and `amqp/`), sorted.
fn all_fixtures() -> Vec<PathBuf> {
    let dir = relflow_testkit::fixture("messages");
    let mut files: Vec<PathBuf> = [dir.clone(), dir.join("amqp")]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn imported_toml_routes_every_fixture_and_gives_the_same_variables() {
    let fixtures = all_fixtures();
    let mut keys: Vec<String> =
        fixtures.iter().map(|p| topic_of(p.file_name().unwrap().to_str().unwrap()).to_owned()).collect();
    keys.sort();
    keys.dedup();
    // One topic left out (its messages match nothing), one key that only a
    // literal comparison keeps from matching everything under buildsys.
    keys.retain(|k| k != "org.fedoraproject.prod.git.receive");
    keys.push("org.fedoraproject.prod.buildsys.#".into());
    let site = Site::new(&keys.iter().map(String::as_str).collect::<Vec<_>>());
    for key in &keys {
        std::fs::write(site.path("playbooks").join(format!("{key}.yml")), play("    - debug: var=msg\n")).unwrap();
    }
    let toml_text = site.relflow(&["import", "loopabull", site.config.to_str().unwrap()]);
    let toml = site.path("relflow.toml");
    std::fs::write(&toml, &toml_text).unwrap();
    assert!(toml_text.contains("[compat]\nloopabull = true"), "{toml_text}");
    assert!(
        toml_text.contains("looper `fedmsgrabbitmq` is not used"),
        "the looper without settings is a comment\n{toml_text}"
    );

    // Per rule whether it matched, and each run with its extra vars (the
    // explanation may differ: a literal `*`/`#` key is a condition in TOML).
    let dry_run = |config: &Path, file: &Path| -> Value {
        let out = site.relflow_with(config, &["dry-run", "--json", file.to_str().unwrap()]);
        let report: Value = serde_json::from_str(&out).unwrap();
        let matched: Vec<Value> =
            report[0]["rules"].as_array().unwrap().iter().map(|r| json!([r["rule"], r["matched"]])).collect();
        json!({"matched": matched, "runs": report[0]["runs"]})
    };
    let mut matched = 0;
    for file in &fixtures {
        let (from_yaml, from_toml) = (dry_run(&site.config, file), dry_run(&toml, file));
        assert_eq!(from_toml, from_yaml, "{}: routed or varied differently\n{toml_text}", file.display());
        matched += from_yaml["runs"].as_array().unwrap().len();
    }
    // The test proves something only if most fixtures ran and some did not.
    assert!(matched > fixtures.len() / 2 && matched < fixtures.len(), "{matched} of {} matched", fixtures.len());
    site.relflow_with(&toml, &["check"]);
}

/// Publishes `body` on `vhost`'s amq.topic with `routing_key`, as
/// fedmsg-rabbitmq-serializer did (pika, from the project venv).
fn amqp_publish(vhost: &relflow_testkit::Vhost, routing_key: &str, body: &str) {
    let script = "import sys, pika\n\
        c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))\n\
        ch = c.channel()\nch.confirm_delivery()\n\
        ch.basic_publish('amq.topic', sys.argv[2], sys.argv[3].encode(), mandatory=True)\nc.close()\n";
    let python = common::repo_root().join(".venv/bin/python");
    relflow_testkit::run_ok(
        Command::new(python).args(["-c", script, &vhost.url(), routing_key, body]),
        "publish with pika",
    );
}

#[test]
fn a_complete_rabbitmq_looper_is_a_source_the_bridge_consumes() {
    let vhost = relflow_testkit::Vhost::new("loopabull-looper");
    let name = "org.fedoraproject.prod.buildsys.tag--signed.json";
    let key = topic_of(name);
    let site = Site::new(&[key]);
    let queue = format!("loopabull-{}", relflow_testkit::unique_suffix());
    let looper = format!(
        "    name: fedmsgrabbitmq\n    credentials: {{username: guest, password: guest}}\n    \
         rabbitmq: {{host: 127.0.0.1, port: 5672, virtual_host: {}}}\n    \
         channel_queue: {{name: {queue}, durable: true}}\n",
        vhost.name()
    );
    let yaml = std::fs::read_to_string(&site.config).unwrap().replace("    name: fedmsgrabbitmq\n", &looper);
    std::fs::write(&site.config, yaml).unwrap();
    let seen = site.path("seen.txt");
    std::fs::write(
        site.path(&format!("playbooks/{key}.yml")),
        play(&format!("    - copy:\n        dest: {}\n        content: \"{{{{ msg.msg.tag }}}}\"\n", seen.display())),
    )
    .unwrap();

    let check = site.relflow(&["check"]);
    assert!(check.contains("translated: plugins.looper -> [[source]] type = \"amqp\""), "{check}");
    assert!(!check.contains("guest:guest"), "the password is redacted: {check}");
    assert!(!check.contains("looper `fedmsgrabbitmq`"), "a translated looper is not a warning: {check}");

    let body = std::fs::read_to_string(fixture(name)).unwrap();
    let mut bridge = common::Proc(
        Command::new(env!("CARGO_BIN_EXE_relflow"))
            .arg("--config")
            .arg(&site.config)
            .arg("bridge")
            .env("RELFLOW_DATA_DIR", site.path("data"))
            .env_remove("RELFLOW_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(site.path("bridge.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let patience = std::time::Duration::from_secs(120);
    common::wait_for(patience, "the bridge to declare the looper's queue", || {
        vhost.queues().into_iter().any(|q| q.name == queue).then_some(())
    });
    amqp_publish(&vhost, key, &body);
    let runs = common::wait_for(patience, "the message to be run", || {
        site.relflow(&["worker", "--drain"]);
        let runs: Value = serde_json::from_str(&site.relflow(&["runs", "list", "--json", "--limit", "0"])).unwrap();
        (!runs.as_array().unwrap().is_empty()).then_some(runs)
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(bridge.0.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let stopped = bridge.0.wait().unwrap();
    let log = std::fs::read_to_string(site.path("bridge.log")).unwrap_or_default();
    assert!(stopped.success(), "bridge: {log}");
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#}\n{log}");
    assert_eq!(runs[0]["rule"], key);
    // loopabull's fedmsgrabbitmq looper gave `msg` = the serialized envelope.
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), envelope(name)["msg"]["tag"].as_str().unwrap());
}
