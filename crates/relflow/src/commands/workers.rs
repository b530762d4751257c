//! `relflow workers`: the fleet, from the workers' heartbeats in the run store.

use std::process::ExitCode;

use anyhow::Result;
use relflow_core::Config;
use relflow_engine::fleet::{fleet, FleetView, WorkerView};
use relflow_engine::open_store;

pub async fn run(config: &Config, as_json: bool) -> Result<ExitCode> {
    let view = fleet(open_store(config).await?.as_ref()).await?;
    if as_json {
        super::print_json(&view)?;
    } else {
        print!("{}", Text(&view));
    }
    Ok(ExitCode::SUCCESS)
}

/// The fleet as lines: a summary, then one line per worker and one per run
/// it is running.
struct Text<'a>(&'a FleetView);

impl std::fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.workers.is_empty() {
            return writeln!(f, "no worker has written a heartbeat to this run store in the last day");
        }
        writeln!(f, "{} alive: {} deliveries in flight, {} playbooks running", v.alive, v.in_flight, v.running)?;
        for w in &v.workers {
            worker_line(f, w)?;
            for r in &w.runs {
                let secs = (chrono::Utc::now() - r.started_at).num_seconds();
                writeln!(f, "    running {} {} for {secs}s: {}", short(&r.id), r.rule, r.subject)?;
            }
        }
        Ok(())
    }
}

fn worker_line(f: &mut std::fmt::Formatter<'_>, w: &WorkerView) -> std::fmt::Result {
    let b = &w.seen.beat;
    write!(f, "{:<8} {} (v{}) ", w.state.as_str(), b.id, b.version)?;
    match w.seen.stopped_at {
        Some(at) => write!(f, "stopped {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))?,
        None => write!(f, "beat {}s ago", w.beat_age_secs)?,
    }
    writeln!(f, ", {}/{} playbooks, {}/{} deliveries held", b.running, b.concurrency, b.held, b.prefetch)
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
