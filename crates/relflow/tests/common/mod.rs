//! A throwaway relflow setup per test: config, playbooks and data dir in a
//! temp dir, the real `relflow` binary and the real `ansible-playbook` from
//! the project venv (scripts/setup.sh creates it).

// Each test binary uses its own share of these helpers.
#![allow(dead_code, unused_imports)]

pub mod serve;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub use relflow_testkit::{ansible_playbook, repo_root, wait_for};
use relflow_testkit::{PgDatabase, Vhost};
use serde_json::Value;

/// A real Fedora message of the shared fixtures (`messages/<name>`).
pub fn fixture(name: &str) -> PathBuf {
    relflow_testkit::fixture(&format!("messages/{name}"))
}

/// A play on localhost over the local connection, with the given tasks.
pub fn play(tasks: &str) -> String {
    format!(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  vars:\n    \
         ansible_python_interpreter: \"{{{{ ansible_playbook_python }}}}\"\n  tasks:\n{tasks}"
    )
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    /// `rules` is TOML appended after the common settings.
    pub fn new(rules: &str) -> Env {
        Self::with_settings("", rules)
    }

    /// `worker` is extra lines for the [worker] table.
    pub fn with_settings(worker: &str, rules: &str) -> Env {
        Self::with_tables(worker, "", rules)
    }

    /// Like `with_settings`, plus whole tables (e.g. `[queue]`, `[store]`)
    /// placed before the rules.
    pub fn with_tables(worker: &str, tables: &str, rules: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
        let config = dir.path().join("relflow.toml");
        // Defaults for the [worker] table, each replaced by a line of `worker` with the same key.
        let defaults = ["concurrency = 2", "retry_delay = \"200ms\"", "drain_timeout = \"30s\""];
        let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_owned();
        let overridden: Vec<String> = worker.lines().map(key).collect();
        let mut worker_table: Vec<&str> = defaults.into_iter().filter(|d| !overridden.contains(&key(d))).collect();
        worker_table.extend(worker.lines());
        let text = format!(
            "playbooks_dir = \"playbooks\"\ndata_dir = \"data\"\n\n[ansible]\nplaybook_cmd = {:?}\n\
             inventory = \"localhost,\"\nkill_grace = \"1s\"\n\n[worker]\n{}\n\n{tables}\n\n{rules}",
            ansible_playbook().display().to_string(),
            worker_table.join("\n")
        );
        std::fs::write(&config, text).unwrap();
        Env { dir, config }
    }

    /// Sets `[ansible] inventory` (instead of the default `localhost,`).
    pub fn set_inventory(&self, inventory: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text = text.replace("inventory = \"localhost,\"", &format!("inventory = {inventory:?}"));
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn playbook(&self, name: &str, text: &str) {
        let path = self.path("playbooks").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_relflow"));
        cmd.arg("--config").arg(&self.config).args(args).env_remove("RELFLOW_CONFIG").env_remove("RELFLOW_DATA_DIR");
        cmd
    }

    /// Runs relflow to completion; panics with its output if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "relflow {args:?} failed:\n{}", describe(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// `relflow worker --drain`: its summary line. Exit status 3 (some
    /// messages dead-lettered) is a drain that worked; the test checks the
    /// runs and dead letters it expects.
    pub fn drain(&self) -> String {
        let out = self.run(&["worker", "--drain"]);
        assert!(matches!(out.status.code(), Some(0 | 3)), "relflow worker --drain failed:\n{}", describe(&out));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let dead_lettered = !stdout.contains(" 0 dead-lettered");
        assert_eq!(out.status.code() == Some(3), dead_lettered, "exit status and summary agree: {stdout}");
        stdout
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Starts `relflow worker` in the background. Its log goes to a file in
    /// the test's dir (`worker-N.log`), never to a pipe: an unread pipe fills
    /// up and blocks the worker on its next log line.
    pub fn spawn_worker(&self, extra: &[&str]) -> Child {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let mut args = vec!["worker"];
        args.extend_from_slice(extra);
        let log =
            std::fs::File::create(self.path(&format!("worker-{}.log", N.fetch_add(1, Ordering::Relaxed)))).unwrap();
        self.command(&args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap()
    }

    /// Every `worker-N.log` of this test, for failure messages.
    pub fn worker_logs(&self) -> String {
        let mut logs = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("worker-") {
                logs += &format!("--- {name}\n{}\n", std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        logs
    }

    pub fn runs(&self) -> Vec<Value> {
        self.json(&["runs", "list", "--limit", "0"]).as_array().unwrap().clone()
    }

    pub fn publish_body(&self, topic: &str, body: &Value) -> String {
        self.ok(&["publish", "--topic", topic, &body.to_string()])
    }
}

/// A child process killed (and reaped) when dropped, so a failing test
/// leaves nothing running.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Pids of live processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(false);
        if cmdline.contains(needle) && !zombie && pid != std::process::id() {
            pids.push(pid);
        }
    }
    pids
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// A private RabbitMQ vhost and PostgreSQL database for one test, deleted
/// when dropped: what several worker hosts would share.
pub struct Shared {
    pub vhost: Vhost,
    pub db: PgDatabase,
}

impl Shared {
    pub fn new() -> Shared {
        Shared { vhost: Vhost::new("test"), db: PgDatabase::new() }
    }

    /// `[queue]` and `[store]` tables pointing at them.
    pub fn tables(&self) -> String {
        format!("[queue]\nurl = \"{}\"\n\n[store]\nurl = \"{}\"\n", self.vhost.url(), self.db.url())
    }

    /// `rabbitmqctl list_queues` for the vhost: (name, ready, unacked).
    pub fn queues(&self) -> Vec<(String, u64, u64)> {
        self.vhost.queues().into_iter().map(|q| (q.name, q.ready, q.unacked)).collect()
    }
}
