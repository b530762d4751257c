//! relflow's sources: the buses and hooks messages come from, and the one
//! path they all take to the work queue.
//!
//! ```text
//!  fedmsg (ZeroMQ SUB)  --\
//!  AMQP topic exchange  ---+--> Sink: decode, verify, validate -> dedupe -> WorkQueue::enqueue
//!  POST /hooks/{name}   --/
//! ```
//!
//! Every source has the same shape, [`Source`]: it runs until `shutdown` is
//! cancelled and hands what it receives to the [`Sink`]. It lets go of a
//! message (acks upstream) only once the sink has an answer; an error from
//! the sink means "keep it and retry". Adding a source is one file with one
//! `impl Source`, plus a variant in `relflow_core::config::ingest::SourceConfig`.
//!
//! Embedding (what `relflow bridge` does, and what `relflow serve` does):
//!
//! ```no_run
//! # async fn f(options: relflow_ingest::SinkOptions, sources: Vec<relflow_core::config::SourceConfig>,
//! #            queue: std::sync::Arc<dyn relflow_queue::WorkQueue>) -> anyhow::Result<()> {
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let sink = relflow_ingest::Sink::open(&options, queue)?;
//! // fedmsg and AMQP sources, in the background:
//! let bus = relflow_ingest::run(relflow_ingest::bus_sources(&sources), sink.clone(), shutdown.clone());
//! // webhooks, merged into an existing axum app:
//! let app = axum::Router::new().merge(relflow_ingest::webhook::router(&relflow_ingest::webhooks(&sources), sink)?);
//! # let _ = app;
//! shutdown.cancel();
//! bus.await??;
//! # Ok(()) }
//! ```
//!
//! The crate takes its own options ([`SinkOptions`], the `[[source]]`
//! sections), never the whole configuration: `relflow-engine` maps one to
//! the other.

pub mod amqp;
pub mod auto;
pub mod backfill;
pub mod dedupe;
pub mod gaps;
pub mod http;
pub mod links;
pub mod sink;
pub mod webhook;
pub mod zmq;

use async_trait::async_trait;
use relflow_core::config::ingest::WebhookSource;
use relflow_core::config::SourceConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use dedupe::Dedupe;
pub use gaps::Gaps;
pub use links::{Link, Links};
pub use sink::{Envelope, Event, Observer, Outcome, Sink, SinkError, SinkOptions, Stats, REPLAY_SOURCE};

/// Something messages come from.
#[async_trait]
pub trait Source: Send {
    /// The `[[source]]` name, for logs.
    fn name(&self) -> &str;

    /// Receives until `shutdown` is cancelled, handing each message to
    /// `sink`, and returns `Ok` then. Connection failures are retried
    /// inside; an `Err` is a problem retrying cannot fix (bad address,
    /// unreadable secret file).
    async fn run(self: Box<Self>, sink: Sink, shutdown: CancellationToken) -> anyhow::Result<()>;
}

/// The bus sources among `sources` (fedmsg and AMQP; webhooks are routes,
/// see [`webhook::router`]).
pub fn bus_sources(sources: &[SourceConfig]) -> Vec<Box<dyn Source>> {
    sources
        .iter()
        .filter_map(|s| -> Option<Box<dyn Source>> {
            match s {
                SourceConfig::Fedmsg(f) => Some(Box::new(zmq::ZmqSource::new(f.clone()))),
                SourceConfig::Amqp(a) => Some(Box::new(amqp::AmqpSource::new(a.clone()))),
                SourceConfig::Webhook(_) => None,
            }
        })
        .collect()
}

/// The webhook sources among `sources`.
pub fn webhooks(sources: &[SourceConfig]) -> Vec<WebhookSource> {
    sources
        .iter()
        .filter_map(|s| match s {
            SourceConfig::Webhook(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

/// Everything `relflow bridge` runs: the bus sources, plus the webhooks
/// served on `listen` when there are any, all into `sink`.
pub fn bridge(
    sources: &[SourceConfig],
    listen: &str,
    sink: Sink,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let mut running = bus_sources(sources);
    let hooks = webhooks(sources);
    if !hooks.is_empty() {
        running.push(Box::new(webhook::WebhookServer::new(listen.to_owned(), hooks)));
    }
    if running.is_empty() {
        anyhow::bail!("no [[source]] in the config: nothing to bridge (see crates/relflow-ingest/README.md)");
    }
    Ok(run(running, sink, shutdown))
}

/// Runs `sources` side by side until shutdown or the first error.
pub fn run(sources: Vec<Box<dyn Source>>, sink: Sink, shutdown: CancellationToken) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let stop = shutdown.child_token();
        let mut tasks = tokio::task::JoinSet::new();
        for source in sources {
            let (sink, stop) = (sink.clone(), stop.clone());
            tasks.spawn(async move {
                let name = source.name().to_owned();
                source.run(sink, stop).await.map_err(|e| e.context(format!("source {name:?}")))
            });
        }
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            let result = done.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = result {
                tracing::error!("{e:#}");
                stop.cancel();
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}
