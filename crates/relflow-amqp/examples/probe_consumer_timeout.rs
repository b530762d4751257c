//! Probe: does this RabbitMQ accept `x-consumer-timeout` as a quorum queue
//! argument and as a consumer argument? Usage:
//! `cargo run -p relflow-amqp --example probe_consumer_timeout -- amqp://guest:guest@127.0.0.1:5672/%2f`
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::args().nth(1).unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let conn = Connection::connect(&url, ConnectionProperties::default()).await.expect("connect");
    let name = format!("relflow.probe.{}", std::process::id());
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    let mut with_timeout = args.clone();
    with_timeout.insert("x-consumer-timeout".into(), AMQPValue::LongLongInt(3_600_000));
    let ch = conn.create_channel().await.unwrap();
    match ch.queue_declare(name.as_str().into(), QueueDeclareOptions::durable(), with_timeout).await {
        Ok(_) => println!("queue argument x-consumer-timeout: accepted"),
        Err(e) => println!("queue argument x-consumer-timeout: rejected: {e}"),
    }
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(name.as_str().into(), QueueDeclareOptions::durable(), args).await.unwrap();
    let mut cargs = FieldTable::default();
    cargs.insert("x-consumer-timeout".into(), AMQPValue::LongLongInt(3_600_000));
    match ch.basic_consume(name.as_str().into(), "".into(), BasicConsumeOptions::default(), cargs).await {
        Ok(_) => println!("consumer argument x-consumer-timeout: accepted (possibly ignored)"),
        Err(e) => println!("consumer argument x-consumer-timeout: rejected: {e}"),
    }
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
}
