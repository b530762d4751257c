//! Shared helpers of relflow's benchmarks (`benches/*.rs`). Each benchmark
//! runs relflow and its baseline in the same run, on the real services, and
//! prints (and appends to `target/bench-results/<bench>.md`) the figures and
//! their ratios. None of this is a test: nothing here asserts on time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub mod rulebook;

/// The tests' helpers serve the benchmarks too: `ansible_playbook()` (the
/// venv's, or `$RELFLOW_ANSIBLE_PLAYBOOK`) and a private [`Vhost`] on the
/// shared broker, deleted on drop.
pub use relflow_testkit::{ansible_playbook, repo_root as workspace, Vhost};

/// `$RELFLOW_BIN`, or builds (if needed) and returns the release `relflow`
/// binary, the one users run.
pub fn relflow_bin() -> Result<PathBuf> {
    // scripts/bench.sh builds it once: building it from here with another
    // feature set than the bench's own build would rebuild rustls each time.
    if let Some(bin) = std::env::var_os("RELFLOW_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "relflow", "--bin", "relflow"])
        .current_dir(workspace())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p relflow failed");
    }
    Ok(workspace().join("target/release/relflow"))
}

/// The one-minute load average: benchmarks on a busy 2-core machine lie.
pub fn load_note() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let one = load.split_whitespace().next().unwrap_or("?");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("load average {one} on {cores} cores at start")
}

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The part of [`rss_kib`] that is the process's own (`RssAnon`: heap,
/// stacks), without the pages of its executable and libraries, which are
/// shared with every process running them and reclaimable.
pub fn private_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The `p`-th percentile (0..=100) of `samples`, nearest rank.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A relflow queue payload for `topic` with body `{"n": n}`.
pub fn payload(topic: &str, n: u64) -> Vec<u8> {
    let body = serde_json::json!({ "n": n }).as_object().cloned().unwrap_or_default();
    relflow_core::Message::new(topic, body, "bench").expect("valid topic").to_queue_payload()
}

/// A directory with `relflow.toml`, a playbooks dir and a data dir.
pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    /// `extra` is appended to the config (rules, `[queue]`, ...).
    pub fn new(ansible_extra: &str, extra: &str) -> Result<Setup> {
        let dir = tempfile::Builder::new().prefix("relflow-bench-").tempdir()?;
        std::fs::create_dir_all(dir.path().join("playbooks"))?;
        std::fs::write(dir.path().join("playbooks/trivial.yml"), TRIVIAL_PLAYBOOK)?;
        let config = format!(
            "playbooks_dir = \"playbooks\"\ndata_dir = \"data\"\n\n[ansible]\nplaybook_cmd = \"{}\"\n\
             inventory = \"localhost,\"\n{ansible_extra}\n{extra}\n",
            ansible_playbook().display()
        );
        std::fs::write(dir.path().join("relflow.toml"), config)?;
        Ok(Setup { dir })
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("relflow.toml")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `relflow --config ... <args>`, logs to /dev/null (default level).
    pub fn relflow(&self, bin: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(self.config())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }
}

/// The trivial playbook: a local task that reads the clock, then (when the
/// message has `out`) writes that time, in ns since the epoch, to `out/<n>`.
pub const TRIVIAL_PLAYBOOK: &str = r#"- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: first task
      ansible.builtin.command: "date +%s%N"
      register: t
    - name: record when it ran
      ansible.builtin.copy:
        content: "{{ t.stdout }}"
        dest: "{{ msg.out }}/{{ msg.n }}"
      when: msg.out is defined
"#;

/// `seq 0 runs-1 | xargs -P<cores> ansible-playbook -i localhost, -e VARS
/// trivial.yml` in `playbooks`: the baseline with no queue. `vars` is the
/// extra vars JSON with `@` where each run's number goes.
pub fn xargs_playbooks(playbooks: &Path, runs: u64, cores: usize, vars: &str) -> Result<()> {
    let script = format!(
        "seq 0 {} | xargs -P{cores} -I@ {} -i localhost, -e '{vars}' trivial.yml",
        runs.saturating_sub(1),
        ansible_playbook().display()
    );
    let st = Command::new("sh").args(["-c", &script]).current_dir(playbooks).stdout(Stdio::null()).status()?;
    if !st.success() {
        bail!("xargs ansible-playbook failed");
    }
    Ok(())
}

/// Messages left in the embedded queue (claimed or not).
pub fn queue_len(db: &Path) -> Result<u64> {
    let c = rusqlite::Connection::open(db)?;
    c.busy_timeout(Duration::from_secs(10))?;
    let n: i64 = c.query_row("SELECT count(*) FROM queue", [], |r| r.get(0))?;
    Ok(n as u64)
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// Polls `f` every `every` until it returns `Some`, or fails after `limit`.
pub fn poll<T>(every: Duration, limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("gave up after {limit:?} waiting for {what}");
        }
        std::thread::sleep(every);
    }
}

/// Waits (at most two minutes) until the CPUs have been idle for a whole
/// second: what the last contender left behind (ansible-rulebook's
/// playbooks, a JVM shutting down, the page cache being written back) must
/// not be timed as the next one's cost.
pub fn settle() {
    let quiet = || {
        let (busy0, all0) = cpu_ticks()?;
        std::thread::sleep(Duration::from_secs(1));
        let (busy1, all1) = cpu_ticks()?;
        let share = (busy1 - busy0) as f64 / (all1 - all0).max(1) as f64;
        (share < 0.1).then_some(())
    };
    if poll(Duration::ZERO, Duration::from_secs(120), "an idle machine", quiet).is_err() {
        eprintln!("warning: the machine did not go quiet; the next figures are noisier");
    }
}

/// (busy, total) jiffies of all CPUs, from `/proc/stat`'s first line.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0);
    let total: u64 = ticks.iter().take(8).sum();
    Some((total - idle, total))
}

/// SIGTERM, then wait.
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// Prints the report and appends it to `target/bench-results/<bench>.md`.
pub fn report(bench: &str, lines: &[String]) -> Result<()> {
    let dir = workspace().join("target/bench-results");
    std::fs::create_dir_all(&dir)?;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{bench}.md")))?;
    writeln!(f, "\n## {bench} ({})\n", load_note())?;
    println!("\n## {bench} ({})\n", load_note());
    for l in lines {
        writeln!(f, "{l}")?;
        println!("{l}");
    }
    Ok(())
}
