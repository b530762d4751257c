//! `relflow publish`: put messages on the work queue, through the same door
//! as every bus source (so a message published twice is queued once).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use relflow_core::{escape_controls, Config, Message};
use relflow_ingest::Outcome;
use serde_json::Value;

use crate::cli::PublishArgs;

pub async fn run(config: &Config, args: PublishArgs) -> Result<ExitCode> {
    let messages = match &args.topic {
        Some(topic) => vec![from_topic(config, topic, &args.inputs)?],
        None if args.inputs.is_empty() => {
            bail!("nothing to publish: give message files (or `-` for stdin), or --topic TOPIC BODY")
        }
        None => {
            // Decode everything first, so one bad file publishes nothing
            // rather than half of a batch.
            args.inputs.iter().map(|input| super::read_message(config, Path::new(input))).collect::<Result<_>>()?
        }
    };
    let sink = super::open_sink(config).await?;
    let total = messages.len();
    let mut refused = 0;
    for (i, msg) in messages.into_iter().enumerate() {
        // Ids and topics are the sender's text: print them escaped.
        let (id, topic) = (escape_controls(&msg.id).into_owned(), escape_controls(&msg.topic).into_owned());
        let outcome = if args.force { sink.submit_forced(msg).await? } else { sink.submit(msg).await? };
        let n = format!("[{}/{total}]", i + 1);
        match outcome {
            Outcome::Queued => println!("published {id} ({topic}) {n}"),
            Outcome::Duplicate => println!(
                "duplicate {id} ({topic}): already queued within [ingest] dedupe_window, not queued again \
                 (--force queues it anyway) {n}"
            ),
            Outcome::Rejected { check, reason } => {
                refused += 1;
                eprintln!("error: {id} ({topic}) refused [{check}]: {reason} {n}");
            }
        }
    }
    super::audit::record(config, "publish", &format!("{} of {total} message(s)", total - refused)).await;
    Ok(if refused == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn from_topic(config: &Config, topic: &str, inputs: &[String]) -> Result<Message> {
    let body = match inputs {
        [] => String::from_utf8(super::read_input(Path::new("-"))?).context("body on stdin is not UTF-8")?,
        [body] => body.clone(),
        _ => bail!("with --topic give one JSON body (quote it), not {} arguments", inputs.len()),
    };
    if body.len() > config.max_message_bytes {
        bail!("body is {} bytes, over max_message_bytes ({})", body.len(), config.max_message_bytes);
    }
    let body = match serde_json::from_str::<Value>(&body).context("body is not valid JSON")? {
        Value::Object(map) => map,
        other => bail!("body must be a JSON object, found {}", relflow_core::json_type(&other)),
    };
    Ok(Message::new(topic, body, "cli")?)
}
