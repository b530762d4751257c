//! relflow against its peers on the same matching work: BENCH_RUNS (60)
//! events, each running the same trivial playbook (relflow_bench's, with
//! `out` set, so every run writes `out/<n>`), from the moment each
//! contender is started (queued events waiting, or its source ready to
//! emit) to the last file written (polled every 10 ms). Start-up counts for
//! everyone: it is what an operator waits for after a restart.
//!
//! * `xargs -P<cores> ansible-playbook`: the same playbook lines, no queue.
//! * relflow worker, embedded queue and RabbitMQ (quorum queue), cold and
//!   warm (`[ansible] mode`), default concurrency (= cores).
//! * loopabull 0.0.7 on the same RabbitMQ (classic durable queue, prefetch 1,
//!   one playbook at a time), from `target/bench-venv`.
//! * ansible-rulebook 1.3.2 (its embedded JVM, the same ansible-core), with
//!   `relflow_bench::rulebook`'s local event source, `sequential` (its
//!   default) and `parallel` execution strategies.
//!
//! Contenders are interleaved; with BENCH_ROUNDS (1) > 1 each ratio is the
//! median of the per-round ratios. `scripts/bench.sh` makes both venvs;
//! `cargo bench -p relflow-bench --bench peers`. BENCH_PEERS (comma list,
//! default all: xargs, relflow, loopabull, rulebook) picks contenders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use relflow_bench::rulebook::{self, Rulebook};
use relflow_bench::*;

const TOPIC: &str = "bench.parallel";
const RULE: &str = "[[rule]]\nname = \"peers\"\ntopic = \"bench.parallel\"\nplaybook = \"trivial.yml\"\n";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One event's body: the playbook writes its time to `out/<n>`.
fn body(n: u64, out: &Path) -> String {
    serde_json::json!({"n": n, "out": out}).to_string()
}

/// Starts the contender, then waits for `runs` files in `out`.
fn time_until_done(out: &Path, runs: u64, start: impl FnOnce() -> Result<Option<Child>>) -> Result<Duration> {
    std::fs::create_dir_all(out)?;
    let t0 = Instant::now();
    let mut child = start()?;
    let done = poll(Duration::from_millis(10), Duration::from_secs(3600), "every run", || {
        let n = std::fs::read_dir(out).ok()?.count() as u64;
        (n >= runs).then_some(())
    });
    let took = t0.elapsed();
    if let Some(c) = child.as_mut() {
        stop(c);
    }
    done.map(|()| took)
}

fn xargs(runs: u64, out: &Path) -> Result<Duration> {
    let setup = Setup::new("", "")?;
    let cores = cores();
    time_until_done(out, runs, || {
        let vars = format!("{{\"msg\":{{\"n\":@,\"out\":{}}}}}", serde_json::to_string(out)?);
        xargs_playbooks(&setup.path().join("playbooks"), runs, cores, &vars)?;
        Ok(None)
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// relflow worker over `queue` ("embedded" or a vhost's URL) in `mode`.
fn relflow(bin: &Path, queue: Option<&str>, mode: &str, runs: u64, out: &Path) -> Result<Duration> {
    let tables = queue.map(|url| format!("[queue]\nurl = {url:?}\n")).unwrap_or_default();
    let setup = Setup::new(&format!("mode = \"{mode}\""), &format!("{tables}\n{RULE}"))?;
    for n in 0..runs {
        if !setup.relflow(bin, &["publish", "--topic", TOPIC, &body(n, out)]).status()?.success() {
            bail!("relflow publish failed");
        }
    }
    time_until_done(out, runs, || Ok(Some(setup.relflow(bin, &["worker"]).spawn()?)))
}

/// loopabull's config: its rabbitmq looper on `queue` (whose name is the
/// routing key it sees, so rkname runs `<queue>.yml`), an empty ansible.cfg
/// file. Not `/dev/null`: loopabull runs ansible-playbook with only
/// ANSIBLE_CONFIG in its environment, and ansible-core 2.19 fails every
/// run whose config is `/dev/null` there.
fn loopabull_config(dir: &Path, vhost: &str, queue: &str) -> Result<PathBuf> {
    let playbooks = dir.join("playbooks");
    std::fs::copy(playbooks.join("trivial.yml"), playbooks.join(format!("{queue}.yml")))?;
    std::fs::write(dir.join("ansible.cfg"), "")?;
    let text = format!(
        "loglevel: warning\nrouting_keys: [{queue}]\n\
         plugins:\n  looper:\n    name: fedmsgrabbitmq\n    rabbitmq:\n      host: 127.0.0.1\n      virtual_host: {vhost}\n\
         \x20   channel_queue:\n      name: {queue}\n      durable: true\n      exclusive: false\n      auto_delete: false\n\
         \x20 translator:\n    name: rkname\n\
         ansible:\n  playbooks_dir: {}\n  cfg_file_path: {}\n  playbook_cmd: {}\n",
        playbooks.display(),
        dir.join("ansible.cfg").display(),
        ansible_playbook().display()
    );
    let path = dir.join("loopabull.yml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Publishes the bodies to `queue` (declared classic and durable, as
/// loopabull declares it), with confirms.
fn fill(url: &str, queue: &str, bodies: &[String]) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let conn = Connection::connect(url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        ch.queue_declare(queue.into(), QueueDeclareOptions::durable(), FieldTable::default()).await?;
        let props = BasicProperties::default().with_delivery_mode(2);
        for b in bodies {
            let opts = BasicPublishOptions::default();
            ch.basic_publish("".into(), queue.into(), opts, b.as_bytes(), props.clone()).await?.await?;
        }
        conn.close(200, "filled".into()).await?;
        anyhow::Ok(())
    })
}

fn loopabull(vhost: &Vhost, runs: u64, out: &Path) -> Result<Duration> {
    let bin = workspace().join("target/bench-venv/bin/loopabull");
    let setup = Setup::new("", "")?;
    let config = loopabull_config(setup.path(), vhost.name(), TOPIC)?;
    let bodies: Vec<String> = (0..runs).map(|n| body(n, out)).collect();
    fill(&vhost.url(), TOPIC, &bodies)?;
    time_until_done(out, runs, || {
        let child = Command::new(&bin)
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start loopabull: run scripts/bench.sh (it makes target/bench-venv)")?;
        Ok(Some(child))
    })
}

/// ansible-rulebook with the local source emitting the events at once.
fn rulebook(strategy: &str, runs: u64, out: &Path) -> Result<Duration> {
    let rules = "    - name: run\n      condition: event.n is defined\n      \
                 action:\n        run_playbook:\n          name: trivial.yml\n";
    let args = [("limit", runs.to_string()), ("out", out.display().to_string())];
    let rulebook = Rulebook::new(strategy, &args, rules)?;
    time_until_done(out, runs, || Ok(Some(rulebook.command().spawn().context(rulebook::MISSING)?)))
}

/// Runs one contender, its output files in the given dir.
type Contender<'a> = Box<dyn Fn(&Path) -> Result<Duration> + 'a>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    let runs = env_num("BENCH_RUNS", 60);
    let rounds = env_num("BENCH_ROUNDS", 1).max(1);
    let peers = std::env::var("BENCH_PEERS").unwrap_or_else(|_| "xargs,relflow,loopabull,rulebook".into());
    let on = |p: &str| peers.split(',').any(|x| x.trim() == p);
    let bin = relflow_bin()?;
    let bin = bin.as_path();
    let scratch = tempfile::Builder::new().prefix("relflow-bench-peers-").tempdir()?;
    let mut times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        let vhost = Vhost::new("peers");
        let mut contenders: Vec<(String, Contender)> = Vec::new();
        if on("xargs") {
            contenders.push((format!("xargs -P{} ansible-playbook", cores()), Box::new(|o| xargs(runs, o))));
        }
        if on("relflow") {
            for mode in ["cold", "warm"] {
                contenders
                    .push((format!("relflow {mode}, embedded"), Box::new(move |o| relflow(bin, None, mode, runs, o))));
                let url = vhost.url();
                contenders.push((
                    format!("relflow {mode}, RabbitMQ"),
                    Box::new(move |o| relflow(bin, Some(&url), mode, runs, o)),
                ));
            }
        }
        if on("loopabull") {
            contenders.push(("loopabull 0.0.7, RabbitMQ".into(), Box::new(|o| loopabull(&vhost, runs, o))));
        }
        if on("rulebook") {
            for strategy in ["sequential", "parallel"] {
                contenders.push((
                    format!("ansible-rulebook 1.3.2, {strategy}"),
                    Box::new(move |o| rulebook(strategy, runs, o)),
                ));
            }
        }
        for (i, (name, run)) in contenders.iter().enumerate() {
            let out = scratch.path().join(format!("r{round}-{i}"));
            settle();
            let took = run(&out).with_context(|| name.clone())?;
            eprintln!("round {round}: {name}: {:.1} s", took.as_secs_f64());
            times.entry(name.clone()).or_default().push(took.as_secs_f64());
        }
    }
    report("peers", &table(runs, rounds, &times))
}

/// Each contender's median time and rate, and each relflow row's median
/// per-round speed-up over each baseline.
fn table(runs: u64, rounds: u64, times: &BTreeMap<String, Vec<f64>>) -> Vec<String> {
    let mut lines = vec![
        format!("{runs} events, each running the trivial playbook; {rounds} round(s), medians."),
        String::new(),
        "| contender | seconds | runs/s |".into(),
        "|---|---|---|".into(),
    ];
    for (name, t) in times {
        let s = median(t.clone());
        lines.push(format!("| {name} | {s:.1} | {:.2} |", runs as f64 / s));
    }
    let (ours, theirs): (Vec<_>, Vec<_>) = times.iter().partition(|(name, _)| name.starts_with("relflow"));
    if !ours.is_empty() && !theirs.is_empty() {
        lines.push(String::new());
        let header: Vec<&str> = theirs.iter().map(|(n, _)| n.as_str()).collect();
        lines.push(format!("| relflow speed-up over | {} |", header.join(" | ")));
        lines.push(format!("|---|{}", "---|".repeat(header.len())));
        for (name, ts) in &ours {
            let cells: Vec<String> = theirs
                .iter()
                .map(|(_, bs)| format!("{:.2}x", median(bs.iter().zip(ts.iter()).map(|(b, t)| b / t).collect())))
                .collect();
            lines.push(format!("| {name} | {} |", cells.join(" | ")));
        }
    }
    lines
}
