//! `relflow timers list` and `relflow timers fire NAME`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use relflow_core::Config;
use relflow_engine::{open_store, timer_views, Timers};

use crate::cli::TimersCommand;

pub async fn run(config: Config, cmd: TimersCommand) -> Result<ExitCode> {
    match cmd {
        TimersCommand::List { json } => list(&config, json.json).await,
        TimersCommand::Fire { name } => fire(config, &name).await,
    }
}

async fn list(config: &Config, as_json: bool) -> Result<ExitCode> {
    let states = open_store(config).await?.timer_states().await?;
    let views = timer_views(config, &states, chrono::Utc::now());
    if as_json {
        super::print_json(&views)?;
    } else if views.is_empty() {
        println!("no [[timer]] is configured");
    } else {
        for v in &views {
            println!("{v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn fire(config: Config, name: &str) -> Result<ExitCode> {
    let store = open_store(&config).await?;
    let sink = super::open_sink(&config).await?;
    let config = Arc::new(config);
    let timers = Timers::new(Arc::clone(&config), store, sink, format!("cli:{}", super::audit::local_user()));
    let slot = timers.fire(name).await?;
    super::audit::record(&config, "timer.fire", &format!("{name} {}", slot.slot)).await;
    println!("fired {name}: message {}", relflow_engine::timers::message_id(&slot));
    Ok(ExitCode::SUCCESS)
}
