//! `relflow status`: queue depth and run counts.

use std::process::ExitCode;

use anyhow::Result;
use relflow_core::Config;
use relflow_ingest::gaps::{Gap, Gaps, Producer, Totals};
use relflow_store::RunStatus;
use serde_json::json;

use relflow_engine::fleet::WorkerState;
use relflow_engine::Backends;

pub async fn run(config: &Config, as_json: bool) -> Result<ExitCode> {
    let b = Backends::open(config, 1).await?;
    let mut depth = b.queue.depth().await?;
    let fleet = relflow_engine::fleet::fleet(b.store.as_ref()).await?;
    fleet.count_in_flight(config, &mut depth);
    let summary = b.store.summary().await?;
    let mut runs = serde_json::Map::new();
    for status in RunStatus::ALL {
        let n: u64 = summary.iter().filter(|c| c.status == status).map(|c| c.count).sum();
        runs.insert(status.as_str().into(), n.into());
    }
    let noop = b.store.noop_count().await?;
    let outbox = b.store.outbox_backlog().await?;
    let batches = relflow_engine::batch_views(config, b.store.open_batches().await?);
    let timers = relflow_engine::timer_views(config, &b.store.timer_states().await?, chrono::Utc::now());
    let missed: usize = timers.iter().map(|t| t.missed).sum();
    let sequence = fedmsg_sequence(config)?;
    if as_json {
        let (totals, producers, gaps) = match &sequence {
            Some((t, p, g)) => (json!(t), json!(p), json!(g)),
            None => (json!(null), json!([]), json!([])),
        };
        let fedmsg = json!({"totals": totals, "producers": producers, "recent_gaps": gaps});
        super::print_json(&json!({"queue": depth, "runs": runs, "noop_messages": noop, "announcements": outbox,
            "open_batches": batches, "timers": {"count": timers.len(), "missed": missed}, "fedmsg_sequence": fedmsg,
            "workers": {"alive": fleet.alive, "lost": fleet.count(WorkerState::Lost), "running": fleet.running}}))?;
    } else {
        println!(
            "queue: {} ready, {} in flight, {} delayed, {} dead",
            depth.ready, depth.in_flight, depth.delayed, depth.dead
        );
        let counts: Vec<_> =
            runs.iter().filter(|(_, n)| n.as_u64() != Some(0)).map(|(k, n)| format!("{n} {k}")).collect();
        println!("runs:  {}", if counts.is_empty() { "none".into() } else { counts.join(", ") });
        println!("no-op messages (matched no rule): {noop}");
        println!(
            "workers: {} alive, {} playbooks running, {} lost (relflow workers)",
            fleet.alive,
            fleet.running,
            fleet.count(WorkerState::Lost)
        );
        let joins = batches.iter().filter(|b| b.kind == relflow_store::BatchKind::Join).count();
        println!("open: {} coalesce windows, {joins} joins", batches.len() - joins);
        if !timers.is_empty() {
            println!("timers: {} ({missed} missed slot(s) waiting for a worker)", timers.len());
        }
        if config.announce.is_some() || !outbox.is_empty() {
            print!("{}", relflow_announce::Pending(&outbox));
        }
        if let Some((t, _, gaps)) = &sequence {
            println!(
                "fedmsg: {} producer(s), {} gap(s) ({} message(s) lost), {} producer restart(s)",
                t.producers, t.gaps, t.missing, t.restarts
            );
            for g in gaps {
                println!("  gap: {} lost from {} (i {}..{})", g.missing, g.producer, g.after, g.before);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

type Sequence = (Totals, Vec<Producer>, Vec<Gap>);

/// The fedmsg sequence state the bridge keeps in `data_dir/ingest.sqlite3`
/// (see relflow_ingest::gaps), if a bridge ever wrote one.
fn fedmsg_sequence(config: &Config) -> Result<Option<Sequence>> {
    let path = config.data_dir.join("ingest.sqlite3");
    if !path.exists() {
        return Ok(None);
    }
    let gaps = Gaps::open(&path)?;
    Ok(Some((gaps.totals()?, gaps.producers()?, gaps.recent(10)?)))
}
