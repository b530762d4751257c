//! Parallel runs: 40 (BENCH_RUNS) trivial playbooks on this machine, relflow
//! worker (default concurrency = cores, cold and warm) vs
//! `xargs -P<cores> ansible-playbook`. Wall time from start to the last run
//! done (relflow: queue empty, polled every 10 ms; its start-up is included).
//! `cargo bench -p relflow-bench --bench parallel`.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use relflow_bench::*;

const RULE: &str = "[[rule]]\nname = \"parallel\"\ntopic = \"bench.parallel\"\nplaybook = \"trivial.yml\"\n";

fn main() -> Result<()> {
    let runs: u64 = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let bin = relflow_bin()?;

    let setup = Setup::new("", "")?;
    let t0 = Instant::now();
    xargs_playbooks(&setup.path().join("playbooks"), runs, cores, "{\"msg\":{\"n\":@}}")?;
    let xargs = t0.elapsed();
    let mut lines = vec![
        format!("{runs} trivial playbooks, {cores} at a time."),
        String::new(),
        "| how | seconds | playbooks/s | speed vs xargs |".into(),
        "|---|---|---|---|".into(),
        format!(
            "| xargs -P{cores} ansible-playbook | {:.1} | {:.2} | 1.00 |",
            xargs.as_secs_f64(),
            runs as f64 / xargs.as_secs_f64()
        ),
    ];
    for mode in ["cold", "warm"] {
        let setup = Setup::new(&format!("mode = \"{mode}\""), RULE)?;
        for n in 0..runs {
            let body = format!("{{\"n\": {n}}}");
            if !setup.relflow(&bin, &["publish", "--topic", "bench.parallel", &body]).status()?.success() {
                bail!("relflow publish failed");
            }
        }
        let db = setup.path().join("data/relflow.sqlite3");
        let t0 = Instant::now();
        let mut worker = setup.relflow(&bin, &["worker"]).spawn()?;
        poll(Duration::from_millis(10), Duration::from_secs(1800), "the queue to drain", || {
            (queue_len(&db).ok()? == 0).then_some(())
        })?;
        let took = t0.elapsed();
        stop(&mut worker);
        lines.push(format!(
            "| relflow worker ({mode}) | {:.1} | {:.2} | {:.2} |",
            took.as_secs_f64(),
            runs as f64 / took.as_secs_f64(),
            xargs.as_secs_f64() / took.as_secs_f64()
        ));
    }
    report("parallel", &lines)
}
