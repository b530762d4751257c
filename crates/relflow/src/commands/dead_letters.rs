//! `relflow dead-letters list|replay|purge`

use std::process::ExitCode;

use anyhow::{bail, Result};
use relflow_core::Config;
use relflow_engine::{already_succeeded, open_queue, open_store, DeadLetterView};

use crate::cli::DeadLettersCommand;

pub async fn run(config: &Config, cmd: DeadLettersCommand) -> Result<ExitCode> {
    match cmd {
        DeadLettersCommand::List { limit, json } => {
            let dead = open_queue(config, 1).await?.dead_letters(limit).await?;
            let rows: Vec<DeadLetterView> = dead.iter().map(DeadLetterView::from).collect();
            if json.json {
                super::print_json(&rows)?;
            } else if rows.is_empty() {
                println!("no dead letters");
            } else {
                for r in &rows {
                    println!("{r}");
                }
                println!("replay one with: relflow dead-letters replay ID");
            }
        }
        DeadLettersCommand::Replay { id } => {
            let queue = open_queue(config, 1).await?;
            let Some(dead) = queue.find_dead_letter(id).await? else {
                bail!("no dead letter with id {id} (see `relflow dead-letters list`)");
            };
            if let Some(done) = already_succeeded(config, open_store(config).await?.as_ref(), &dead).await? {
                bail!("dead letter {id} stays: {done}");
            }
            // Through the intake, like every other way onto the queue.
            if !super::sink_on(config, queue)?.replay(id).await? {
                bail!("no dead letter with id {id} (see `relflow dead-letters list`)");
            }
            super::audit::record(config, "replay", &id.to_string()).await;
            println!("dead letter {id} is back on the queue; a worker will run it");
        }
        DeadLettersCommand::Purge { yes } => {
            if !yes {
                bail!("purging deletes every dead letter for good; run again with --yes");
            }
            let purged = open_queue(config, 1).await?.purge_dead_letters().await?;
            super::audit::record(config, "purge", "").await;
            println!("purged {purged} dead letter(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
