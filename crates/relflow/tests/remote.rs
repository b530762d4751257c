//! Remote work as docs/automation-users.md sets it up, step by step; this
//! file is its executable twin. Real parts only: a remote host in a network
//! namespace with its own sshd (`relflow_testkit::RemoteHost`), an
//! automation user with a key, its sudo rule from `flr sudoers` (checked
//! with `visudo -cf`), flr installed root-owned with per-user roots; relflow
//! workers on RabbitMQ (a throwaway vhost) with a PostgreSQL run store (a
//! throwaway database), running `examples/flr/checksum-create.yml`, which
//! SSHes in as the automation user and runs `sudo flr checksum create` on
//! the compose a message names.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use common::{processes_with, Env, Shared};
use relflow_testkit::{flr_binary, wait_until, AutomationUser, RemoteHost};
use serde_json::{json, Value};

/// Around the shipped example: a test-only first play that holds a
/// message's first run on the host (`msg.hold` seconds) so a worker can be
/// killed mid-run, and a last play that leaves one marker per finished run
/// (`~/done/<msg_id>--<run_id>`), to count completions on the host.
const PLAYBOOK: &str = r#"
- name: Hold the first run of a message (test only)
  hosts: compose_hosts
  gather_facts: false
  tasks:
    - name: was this message held before
      ansible.builtin.stat:
        path: "~/held-{{ msg.n }}"
      register: held
      when: msg.hold > 0
    - name: remember it was
      ansible.builtin.file:
        path: "~/held-{{ msg.n }}"
        state: touch
      when: msg.hold > 0 and not held.stat.exists
    - name: hold
      ansible.builtin.command:
        argv: [sleep, "{{ msg.hold }}"]
      when: msg.hold > 0 and not held.stat.exists

- ansible.builtin.import_playbook: checksum-create.yml

- name: Count the finished run (test only)
  hosts: compose_hosts
  gather_facts: false
  tasks:
    - ansible.builtin.file:
        path: ~/done
        state: directory
        mode: "0700"
    - ansible.builtin.file:
        path: "~/done/{{ msg_id }}--{{ relflow.run_id }}"
        state: touch
"#;

const URL: &str = "http://kojipkgs.fedoraproject.org/compose";

/// The remote host with everything docs/automation-users.md installs, and
/// a relflow setup that reaches it.
struct Site {
    host: RemoteHost,
    user: AutomationUser,
    /// flr and its config, root-owned, as the sudo rule names them.
    flr: PathBuf,
    flr_config: PathBuf,
    /// The user's compose tree (its compose and checksum roots).
    tree: PathBuf,
    /// Another purpose's sync root, on the same host.
    other_root: PathBuf,
    /// The throwaway vhost and database, kept until the test ends.
    _shared: Shared,
    env: Env,
}

impl Site {
    fn new() -> Site {
        // 1. The host and its automation user.
        let host = RemoteHost::start();
        let user = host.add_user("compose");
        // 2. flr, root-owned where the user cannot write; its config with
        //    this user's roots, and another user's that it must not get.
        let flr = host.install("bin/flr", std::fs::read(flr_binary()).unwrap(), 0o755);
        let tree = host.root_dir().join("srv/compose");
        let other_root = host.root_dir().join("srv/ostree");
        for dir in [&tree.join("stage"), &other_root] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let config = format!(
            "[users.{user}]\ncompose_roots = [{tree:?}]\nchecksum_roots = [{tree:?}]\nsync_roots = [{stage:?}]\n\n\
             [users.ra-ostree]\nsync_roots = [{other_root:?}]\n\n[compose.url_map]\n\"{URL}/\" = \"{}/\"\n",
            tree.display(),
            user = user.name(),
            stage = tree.join("stage"),
        );
        let flr_config = host.install("etc/flr.toml", config, 0o644);
        // 3. The sudo rule, from flr itself (RemoteHost checks it with visudo -cf).
        let rule = flr_out(&[
            "sudoers",
            "--user",
            user.name(),
            "--allow",
            "checksum.create,sync",
            "--flr-path",
            flr.to_str().unwrap(),
            "--config",
            flr_config.to_str().unwrap(),
        ]);
        host.install_sudoers(&user, &rule);
        // 4. relflow: the inventory names the host and its user; the
        //    playbook calls flr the way the rule allows.
        let shared = Shared::new();
        // prefetch = concurrency: each worker holds only what it runs, so
        // both take part (and a killed one's runs are the ones it started).
        let env = Env::with_tables("concurrency = 4\nprefetch = 4\n", &shared.tables(), RULES);
        let flr_command = json!(["sudo", "-n", flr, "--config", flr_config]).to_string();
        let inventory =
            format!("[compose_hosts]\n{} flr_command='{flr_command}'\n", host.inventory_line("compose01", &user));
        std::fs::write(env.path("inventory.ini"), inventory).unwrap();
        env.set_inventory("inventory.ini");
        let example = common::repo_root().join("examples/flr/checksum-create.yml");
        env.playbook("checksum-create.yml", &std::fs::read_to_string(example).unwrap());
        env.playbook("checksum.yml", PLAYBOOK);
        env.ok(&["check"]);
        Site { host, user, flr, flr_config, tree, other_root, _shared: shared, env }
    }

    /// A compose dir for message `n` with one image, and its message.
    fn compose(&self, n: u32, hold: u32) -> Value {
        let dir = self.tree.join(format!("test-{n}/compose"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("image-{n}.iso")), format!("image {n} of {}\n", self.host.netns())).unwrap();
        // Older pungi messages have `compose//`; flr maps both.
        let slash = if n.is_multiple_of(2) { "/" } else { "//" };
        json!({"location": format!("{URL}{slash}test-{n}/compose"), "n": n, "hold": hold})
    }

    fn publish(&self, topic: &str, body: &Value) {
        let n = body["n"].as_u64().unwrap_or(999);
        let message = json!({"topic": topic, "msg": body, "msg_id": format!("remote-{n}")});
        let file = self.env.path(&format!("m-{n}.json"));
        std::fs::write(&file, message.to_string()).unwrap();
        self.env.ok(&["publish", file.to_str().unwrap()]);
    }

    /// The CHECKSUM flr wrote for message `n` names the image with the
    /// right SHA256.
    fn checksum_is_right(&self, n: u32) -> bool {
        let dir = self.tree.join(format!("test-{n}/compose"));
        let image = format!("image-{n}.iso");
        let out = std::process::Command::new("sha256sum").arg(dir.join(&image)).output().unwrap();
        let digest = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned();
        let written = std::fs::read_to_string(dir.join("CHECKSUM")).unwrap_or_default();
        written.contains(&format!("SHA256 ({image}) = {digest}\n"))
    }

    /// How many runs finished on the host, per message id.
    fn done_on_host(&self) -> BTreeMap<String, usize> {
        let mut done = BTreeMap::new();
        for e in std::fs::read_dir(self.user.home().join("done")).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let msg_id = name.split("--").next().unwrap_or_default().to_owned();
            *done.entry(msg_id).or_default() += 1;
        }
        done
    }

    /// Every log relflow kept: the workers' and each recorded run's.
    fn all_logs(&self) -> String {
        let mut logs = self.env.worker_logs();
        for run in self.env.runs() {
            let id = run["id"].as_str().unwrap();
            logs += self.env.json(&["runs", "show", id])["log"].as_str().unwrap_or_default();
        }
        logs
    }

    /// Remote processes whose command line is exactly `cmd`.
    fn remote(&self, cmd: &str) -> usize {
        self.host.processes().iter().filter(|(_, c)| c == cmd).count()
    }

    fn wait_host_idle(&self) {
        wait_until(Duration::from_secs(60), "no login left on the host", || self.host.processes().is_empty());
    }
}

const RULES: &str = r#"
[[rule]]
name = "checksum"
topic = "compose.checksum"
playbook = "checksum.yml"
retries = 3
timeout = "10m"

[[rule]]
name = "nowhere"
topic = "compose.nowhere"
playbook = "checksum.yml"
limit = "compose-x86_64"
retries = 3

[[rule]]
name = "nowhere-ok"
topic = "compose.nowhere-ok"
playbook = "checksum.yml"
limit = "compose-x86_64"
allow_no_hosts = true
"#;

fn flr_out(args: &[&str]) -> String {
    let out = std::process::Command::new(flr_binary()).args(args).output().unwrap();
    assert!(out.status.success(), "flr {args:?}: {}", common::describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn wait_all(env: &Env, children: Vec<Child>) {
    for mut c in children {
        let status = c.wait().unwrap();
        assert!(status.success(), "worker exited with {status}; logs:\n{}", env.worker_logs());
    }
}

fn statuses(runs: &[Value]) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for r in runs {
        *count.entry(r["status"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    count
}

#[test]
fn two_workers_run_twenty_messages_on_the_remote_host_as_the_automation_user() {
    let site = Site::new();
    for n in 0..20 {
        // Runs end at different times while others still use the host.
        site.publish("compose.checksum", &site.compose(n, n % 3));
    }
    let workers = vec![site.env.spawn_worker(&["--drain"]), site.env.spawn_worker(&["--drain"])];
    wait_all(&site.env, workers);

    let runs = site.env.runs();
    assert_eq!(statuses(&runs), BTreeMap::from([("succeeded".into(), 20)]), "{runs:#?}");
    let ids: HashSet<&str> = runs.iter().map(|r| r["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 20);
    let workers: HashSet<&str> = runs.iter().map(|r| r["worker"].as_str().unwrap()).collect();
    assert_eq!(workers.len(), 2, "both workers ran playbooks");
    assert!((0..20).all(|n| site.checksum_is_right(n)), "every CHECKSUM on the host is right");
    let done = site.done_on_host();
    assert_eq!((done.len(), done.values().all(|&c| c == 1)), (20, true), "{done:?}");
    let logs = site.all_logs();
    assert!(!logs.contains("Shared connection"), "an SSH master was shared:\n{logs}");
    site.wait_host_idle();
}

#[test]
fn a_killed_worker_s_remote_runs_complete_once_and_the_other_worker_s_are_unaffected() {
    let site = Site::new();
    // Worker A takes four messages whose first runs hold the host "forever".
    for n in 0..4 {
        site.publish("compose.checksum", &site.compose(n, 4100 + n));
    }
    let mut a = site.env.spawn_worker(&[]);
    wait_until(Duration::from_secs(120), "worker A's 4 runs on the host", || {
        (0..4).all(|n| site.remote(&format!("sleep {}", 4100 + n)) == 1)
    });
    // Worker B starts, with four runs of its own in flight on the same host.
    let b = site.env.spawn_worker(&["--drain"]);
    for n in 4..8 {
        site.publish("compose.checksum", &site.compose(n, 8));
    }
    wait_until(Duration::from_secs(120), "worker B's 4 runs on the host", || site.remote("sleep 8") == 4);

    let a_pid = a.id();
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    // Its supervisors tear its runs down: locally (ansible, ssh masters)...
    let a_runs = format!("/ansible/runs/{a_pid}-");
    wait_until(Duration::from_secs(60), "the killed worker's local processes to go", || {
        processes_with(&a_runs).is_empty()
    });
    // ...and so on the host (the masters' connections close).
    wait_until(Duration::from_secs(60), "the killed worker's remote processes to go", || {
        (0..4).all(|n| site.remote(&format!("sleep {}", 4100 + n)) == 0)
    });
    wait_all(&site.env, vec![b]);

    let runs = site.env.runs();
    let a_id = format!(":{a_pid}");
    let (of_a, of_b): (Vec<&Value>, Vec<&Value>) =
        runs.iter().partition(|r| r["worker"].as_str().unwrap().ends_with(&a_id));
    assert_eq!(statuses(&runs), BTreeMap::from([("abandoned".into(), 4), ("succeeded".into(), 8)]), "{runs:#?}");
    assert!(of_a.iter().all(|r| r["status"] == "abandoned"), "{of_a:#?}");
    assert!(of_b.iter().all(|r| r["status"] == "succeeded"), "the other worker's runs: {of_b:#?}");
    let ids: HashSet<&str> = of_b.iter().map(|r| r["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 8, "each message completed once, on worker B");
    let done = site.done_on_host();
    assert_eq!((done.len(), done.values().all(|&c| c == 1)), (8, true), "once on the host too: {done:?}");
    assert!((0..8).all(|n| site.checksum_is_right(n)));
    assert!(!site.env.worker_logs().contains("Shared connection"), "{}", site.env.worker_logs());

    // The next start leaves no run dir (vars file, sockets) of the killed runs.
    site.env.drain();
    let left: Vec<_> =
        std::fs::read_dir(site.env.path("data/ansible/runs")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.iter().all(|p| p.ends_with(".lock")), "left behind: {left:?}");
    site.wait_host_idle();
}

#[test]
fn the_automation_user_can_do_only_what_its_rule_and_roots_allow() {
    let site = Site::new();
    let (flr, cfg) = (site.flr.to_str().unwrap(), site.flr_config.to_str().unwrap());
    let marker = site.host.root_dir().join("pwned");
    let sh = site.host.ssh(&site.user, &["sudo", "-n", "/bin/sh", "-c", &format!("touch {}", marker.display())]);
    assert!(!sh.status.success() && !marker.exists(), "sudo /bin/sh: {}", common::describe(&sh));
    // flr without the pinned config, or with another one: not the rule.
    let other =
        site.host.ssh(&site.user, &["sudo", "-n", flr, "--config", "/tmp/mine.toml", "checksum", "create", "/"]);
    assert!(!other.status.success(), "{}", common::describe(&other));
    // sync is granted, but not into another purpose's root.
    let compose = site.compose(0, 0);
    let src = site.tree.join("test-0/compose");
    let sync = ["sudo", "-n", flr, "--config", cfg, "sync", "--json", "--", src.to_str().unwrap()];
    let out = site.host.ssh(&site.user, &[&sync[..], &[site.other_root.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", common::describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the allowed roots"), "{}", common::describe(&out));

    // A payload that steers the path out of the root: flr refuses it and
    // the run dead-letters at once (retries = 3), with flr's reason.
    let mut escape = site.compose(1, 0);
    escape["location"] = json!(format!("{}/../../etc", site.tree.display()));
    site.publish("compose.checksum", &escape);
    site.publish("compose.checksum", &compose);
    // A rule whose limit matches no host, strict and lenient.
    site.publish("compose.nowhere", &json!({"n": 2, "hold": 0, "location": "/nowhere"}));
    site.publish("compose.nowhere-ok", &json!({"n": 3, "hold": 0, "location": "/nowhere"}));
    site.env.drain();

    let runs = site.env.runs();
    let of = |msg: &str| -> Vec<(String, String)> {
        let mine = runs.iter().filter(|r| r["message_id"] == msg);
        mine.map(|r| (r["rule"].as_str().unwrap().to_owned(), r["status"].as_str().unwrap().to_owned())).collect()
    };
    assert_eq!(of("remote-0"), [("checksum".to_owned(), "succeeded".to_owned())]);
    assert_eq!(of("remote-1"), [("checksum".to_owned(), "failed".to_owned())], "not retried: {runs:#?}");
    assert_eq!(of("remote-2"), [("nowhere".to_owned(), "failed".to_owned())], "not retried: {runs:#?}");
    assert_eq!(of("remote-3"), [("nowhere-ok".to_owned(), "succeeded".to_owned())]);
    assert!(site.checksum_is_right(0));

    let dead = site.env.json(&["dead-letters", "list"]);
    let reasons: BTreeMap<&str, &str> = dead
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["msg_id"].as_str().unwrap(), d["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(reasons.keys().copied().collect::<Vec<_>>(), ["remote-1", "remote-2"], "{dead:#}");
    let escaped = reasons["remote-1"];
    assert!(escaped.starts_with("rule \"checksum\": flr: error: directory "), "flr's reason: {escaped}");
    assert!(escaped.contains("is outside the allowed roots") && escaped.contains("marked permanent"), "{escaped}");
    assert!(reasons["remote-2"].starts_with("rule \"nowhere\": no hosts matched: "), "{}", reasons["remote-2"]);
    assert!(!site.host.root_dir().join("etc/CHECKSUM").exists(), "flr wrote outside its roots");
    site.wait_host_idle();
}
