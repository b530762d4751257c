//! `relflow publish`: put messages on the work queue.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use relflow_core::{Config, Message};
use serde_json::Value;

use crate::backends::open_queue;
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
    let queue = open_queue(config, 1).await?;
    let total = messages.len();
    for (i, msg) in messages.iter().enumerate() {
        queue.enqueue(&msg.to_queue_payload()).await?;
        println!("published {} ({}) [{}/{total}]", msg.id, msg.topic, i + 1);
    }
    Ok(ExitCode::SUCCESS)
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
