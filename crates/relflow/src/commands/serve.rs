//! `relflow serve`: HTTP API + web page + metrics + ingest + worker in one process.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use relflow_core::Config;
use relflow_engine::{Backends, Metrics, Worker};
use tracing::{info, warn};

use crate::cli::ServeArgs;
use relflow_console::{Parts, Server, Shared, Tokens};

pub async fn run(mut config: Config, args: ServeArgs) -> Result<ExitCode> {
    let tokens = Tokens::load(&config)?;
    let http = !args.no_http;
    let run_worker = config.http.worker && !args.no_worker;
    let ingest = config.http.ingest && !args.no_ingest && http;
    let listen = args.listen.unwrap_or(config.http.listen);
    let concurrency = args.concurrency.unwrap_or(config.worker.concurrency).max(1);
    config.worker.concurrency = concurrency;
    config.worker.prefetch = args.prefetch.unwrap_or(config.worker.prefetch);
    let backends = Backends::open(&config, config.worker.prefetch_for(concurrency)).await?;
    let metrics = Arc::new(Metrics::new());
    // One intake for everything this process queues: every source dedupes
    // against the others, and /metrics counts them all.
    let sink = relflow_ingest::Sink::open(&relflow_engine::options::sink(&config), Arc::clone(&backends.queue))?;
    sink.observe(Arc::clone(&metrics) as Arc<dyn relflow_ingest::Observer>);
    let config = Arc::new(config);
    let shutdown = super::shutdown_on_signal("shutting down; running playbooks get worker.drain_timeout to finish")?;
    if http && tokens.is_empty() {
        warn!("no [http] token configured: replay, purge and publish over HTTP are refused until one is set");
    }
    let parts = Parts { tokens, ingest, worker: run_worker };
    let state =
        Shared::new(Arc::clone(&config), &backends, sink.clone(), Arc::clone(&metrics), parts, shutdown.clone());
    let mut server = Server::new(state);
    if ingest && !config.sources.is_empty() {
        // The bridge, in-process: bus subscribers as background tasks and
        // webhooks as routes on this server.
        let bus = relflow_ingest::bus_sources(&config.sources);
        if !bus.is_empty() {
            let sources = relflow_ingest::run(bus, sink.clone(), shutdown.clone());
            server.spawn("bus sources", async move { sources.await? });
            super::backfill_on_start(&sink);
        }
        let hooks = relflow_ingest::webhooks(&config.sources);
        if !hooks.is_empty() {
            server.merge(relflow_ingest::webhook::router(&hooks, sink)?);
        }
    }
    if run_worker {
        let worker = Worker::new(Arc::clone(&config), backends, concurrency)?.with_metrics(metrics);
        let stop = shutdown.clone();
        server.spawn("worker", async move {
            let worker = Arc::new(worker);
            Arc::clone(&worker).run(false, stop).await;
            if let Some(why) = worker.fatal() {
                super::exit_stopped_worker(why);
            }
            Ok(())
        });
    }

    crate::systemd::ready("serving");
    crate::systemd::spawn_watchdog();
    server
        .run(http.then_some(listen), |addr| {
            // On stdout, so scripts (and tests using port 0) can find the address.
            println!("relflow serve: listening on http://{addr}");
            let _ = std::io::stdout().flush();
            info!(%addr, worker = run_worker, ingest, "serving the API, web page and /metrics");
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}
