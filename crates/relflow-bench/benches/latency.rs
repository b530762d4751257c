//! Latency: publish -> the first task of a trivial localhost playbook runs,
//! p50/p99 over BENCH_RUNS (50) messages one at a time, vs starting
//! `ansible-playbook` by hand (cold) and reading the same clock.
//!
//! relflow is measured cold and warm (`[ansible] mode`), on the embedded
//! queue (a worker in another process notices the publisher's commit within
//! its 5 ms `data_version` watch) and on RabbitMQ (pushed). "publish" is
//! `relflow publish` started by the bench: its start-up is included.
//! `cargo bench -p relflow-bench --bench latency`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Result};
use relflow_bench::*;

const RULE: &str = "[[rule]]\nname = \"latency\"\ntopic = \"bench.latency\"\nplaybook = \"trivial.yml\"\n";

fn main() -> Result<()> {
    let runs: u64 = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let bin = relflow_bin()?;
    let mut lines = vec![
        format!("{runs} messages, one at a time; ms from publish (or from spawning ansible-playbook) to the first task running."),
        String::new(),
        "| how | p50 ms | p99 ms | p50 vs cold ansible-playbook |".into(),
        "|---|---|---|---|".into(),
    ];
    let cold = cold_by_hand(runs)?;
    let cold_p50 = percentile(&cold, 50.0);
    lines.push(row("ansible-playbook by hand (cold)", &cold, cold_p50));

    let vhost = Vhost::new("bench-latency");
    let url = vhost.url();
    for (queue, extra) in [("embedded queue", String::new()), ("rabbitmq", format!("[queue]\nurl = \"{url}\"\n"))] {
        for mode in ["cold", "warm"] {
            let setup = Setup::new(&format!("mode = \"{mode}\""), &format!("{extra}\n{RULE}"))?;
            let samples = via_relflow(&setup, &bin, runs, queue == "rabbitmq")?;
            lines.push(row(&format!("relflow worker, {queue}, {mode}"), &samples, cold_p50));
        }
    }
    report("latency", &lines)
}

fn row(what: &str, samples: &[f64], cold_p50: f64) -> String {
    let p50 = percentile(samples, 50.0);
    format!("| {what} | {p50:.0} | {:.0} | {:.2}x |", percentile(samples, 99.0), p50 / cold_p50)
}

fn read_ns(path: &Path) -> Option<u128> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn cold_by_hand(runs: u64) -> Result<Vec<f64>> {
    let setup = Setup::new("", "")?;
    let out = setup.path().join("out");
    std::fs::create_dir_all(&out)?;
    let mut samples = Vec::new();
    for n in 0..runs {
        let vars = serde_json::json!({"msg": {"n": n, "out": out}}).to_string();
        let t0 = now_ns();
        let st = Command::new(ansible_playbook())
            .args(["-i", "localhost,", "-e", &vars, "trivial.yml"])
            .current_dir(setup.path().join("playbooks"))
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("ansible-playbook failed");
        }
        let Some(ran) = read_ns(&out.join(n.to_string())) else { bail!("the task did not record its time") };
        samples.push((ran.saturating_sub(t0)) as f64 / 1e6);
    }
    Ok(samples)
}

fn via_relflow(setup: &Setup, bin: &Path, runs: u64, amqp: bool) -> Result<Vec<f64>> {
    let out = setup.path().join("out");
    std::fs::create_dir_all(&out)?;
    let db = setup.path().join("data/relflow.sqlite3");
    let mut worker = setup.relflow(bin, &["worker"]).spawn()?;
    // Settled: the worker is up (and a warm pool imported ansible).
    std::thread::sleep(Duration::from_secs(5));
    let mut samples = Vec::new();
    for n in 0..runs {
        let body = serde_json::json!({"n": n, "out": out}).to_string();
        let t0 = now_ns();
        let st = setup.relflow(bin, &["publish", "--topic", "bench.latency", &body]).status()?;
        if !st.success() {
            bail!("relflow publish failed");
        }
        let file = out.join(n.to_string());
        let ran = poll(Duration::from_millis(2), Duration::from_secs(120), "the task to run", || read_ns(&file))?;
        samples.push((ran.saturating_sub(t0)) as f64 / 1e6);
        // One at a time: wait for the run to be recorded and acked.
        let runs_done = || {
            let out = Command::new(bin)
                .arg("--config")
                .arg(setup.config())
                .args(["runs", "list", "--status", "succeeded", "--json", "--limit", "1000"])
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let count = v.as_array().map(|a| a.len()).or_else(|| v["runs"].as_array().map(|a| a.len()))?;
            (count as u64 > n && (amqp || queue_len(&db).ok()? == 0)).then_some(())
        };
        poll(Duration::from_millis(20), Duration::from_secs(120), "the run to finish", runs_done)?;
    }
    stop(&mut worker);
    Ok(samples)
}
