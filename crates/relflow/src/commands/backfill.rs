//! `relflow backfill`: Datagrepper -> the intake (see relflow_ingest::backfill).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use relflow_core::config::backfill::FEDORA_DATAGREPPER;
use relflow_core::Config;
use relflow_ingest::backfill::{self, Datagrepper, SignedTopics, Window};

use crate::cli::BackfillArgs;

pub async fn run(config: &Config, args: &BackfillArgs) -> Result<ExitCode> {
    let now = chrono::Utc::now();
    let start = instant(&args.since, now).context("--since")?;
    let end = match &args.until {
        Some(u) => instant(u, now).context("--until")?,
        None => now.timestamp() as f64,
    };
    anyhow::ensure!(start < end, "--since must be before --until");
    let url = args.url.clone().or_else(|| config.backfill.as_ref().map(|b| b.url.clone()));
    let dg = Datagrepper::new(url.as_deref().unwrap_or(FEDORA_DATAGREPPER));
    let window = Window { start, end, topics: args.topics.clone(), prefixes: vec![] };
    let sink = super::open_sink(config).await?;
    let signed = SignedTopics::from_sources(&config.sources);
    let terminal = std::io::stderr().is_terminal() && !args.json.json;
    let progress = |fetched: u64, total: Option<u64>| {
        if terminal {
            let of = total.map(|t| format!("/{t}")).unwrap_or_default();
            eprint!("\rbackfill: fetched {fetched}{of}");
            let _ = std::io::stderr().flush();
        }
    };
    let report = backfill::run(dg, window, &sink, &signed, args.dry_run, progress).await?;
    if terminal {
        eprintln!();
    }
    if args.json.json {
        super::print_json(&report)?;
    } else {
        println!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `2h` (that long before `now`) or an RFC 3339 time, as Unix seconds.
fn instant(s: &str, now: chrono::DateTime<chrono::Utc>) -> Result<f64> {
    if let Ok(ago) = humantime::parse_duration(s) {
        return Ok(now.timestamp() as f64 - ago.as_secs_f64());
    }
    let at = chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("{s:?} is neither a duration (`2h`, `30m`) nor an RFC 3339 time"))?;
    Ok(at.timestamp() as f64)
}
