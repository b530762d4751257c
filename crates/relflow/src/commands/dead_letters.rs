//! `relflow dead-letters list|replay|purge`

use std::process::ExitCode;

use anyhow::{bail, Result};
use relflow_core::{Config, Message};
use serde_json::json;

use crate::backends::open_queue;
use crate::cli::DeadLettersCommand;

pub async fn run(config: &Config, cmd: DeadLettersCommand) -> Result<ExitCode> {
    let queue = open_queue(config, 1).await?;
    match cmd {
        DeadLettersCommand::List { limit, json } => {
            let dead = queue.dead_letters(limit).await?;
            let rows: Vec<_> = dead
                .iter()
                .map(|d| {
                    // Dead letters may be undecodable: that can be why they died.
                    let msg = Message::from_queue_payload(&d.payload, usize::MAX).ok();
                    json!({
                        "id": d.id,
                        "msg_id": msg.as_ref().map(|m| m.id.clone()),
                        "topic": msg.as_ref().map(|m| m.topic.clone()),
                        "reason": d.reason,
                        "attempt": d.attempt,
                        "dead_at": d.dead_at,
                    })
                })
                .collect();
            if json.json {
                super::print_json(&rows)?;
            } else if rows.is_empty() {
                println!("no dead letters");
            } else {
                for r in &rows {
                    println!(
                        "{:>5}  {}  {}  attempt {}\n       {}",
                        r["id"],
                        r["dead_at"].as_str().unwrap_or(""),
                        r["topic"].as_str().unwrap_or("<undecodable>"),
                        r["attempt"],
                        r["reason"].as_str().unwrap_or("")
                    );
                }
                println!("replay one with: relflow dead-letters replay ID");
            }
        }
        DeadLettersCommand::Replay { id } => {
            if !queue.replay(id).await? {
                bail!("no dead letter with id {id} (see `relflow dead-letters list`)");
            }
            println!("dead letter {id} is back on the queue; a worker will run it");
        }
        DeadLettersCommand::Purge { yes } => {
            if !yes {
                bail!("purging deletes every dead letter for good; run again with --yes");
            }
            println!("purged {} dead letter(s)", queue.purge_dead_letters().await?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
