//! `relflow dead-letters list|replay|purge`

use std::process::ExitCode;

use anyhow::{bail, Result};
use relflow_core::{Config, Message};
use relflow_queue::DeadLetter;
use serde_json::{json, Value};

use crate::backends::open_queue;
use crate::cli::DeadLettersCommand;

/// A dead letter as the CLI's `--json` and the HTTP API show it.
pub fn dead_letter_json(d: &DeadLetter) -> Value {
    // A dead letter may be undecodable: that can be why it died.
    let msg = Message::from_queue_payload(&d.payload, usize::MAX).ok();
    json!({
        "id": d.id,
        "msg_id": msg.as_ref().map(|m| m.id.clone()),
        "topic": msg.as_ref().map(|m| m.topic.clone()),
        "body": msg.as_ref().map(|m| Value::Object(m.body.clone())),
        "reason": d.reason,
        "attempt": d.attempt,
        "dead_at": d.dead_at,
    })
}

pub async fn run(config: &Config, cmd: DeadLettersCommand) -> Result<ExitCode> {
    let queue = open_queue(config, 1).await?;
    match cmd {
        DeadLettersCommand::List { limit, json } => {
            let dead = queue.dead_letters(limit).await?;
            let rows: Vec<_> = dead.iter().map(dead_letter_json).collect();
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
