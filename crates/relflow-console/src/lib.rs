//! The operator console of `relflow serve`: the HTTP API, the web page, `/metrics`,
//! ingest and (optionally) a worker.
//!
//! [`Server`] is the API and page; [`Server::merge`] adds routes (the
//! webhooks) and [`Server::spawn`] long-running tasks (bus sources, the
//! worker). Every message that gets on the queue here goes through the one
//! intake ([`relflow_ingest::Sink`], in [`Shared`]), which also counts it
//! for `/metrics`. Every task gets the same shutdown token: when it fires
//! (SIGTERM), tasks stop, the worker drains and the HTTP server closes.

mod api;
mod audit;
mod auth;
mod control;
mod depth;
mod error;
mod ingest;
mod logs;
mod runs;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::Router;
use chrono::Utc;
use relflow_core::Config;
use relflow_engine::{Metrics, RunLogs};
use relflow_ingest::Sink;
use relflow_queue::{QueueDepth, WorkQueue};
use relflow_store::RunStore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use auth::{Caller, Tokens};
pub use depth::DepthSample;

/// What every handler can reach.
pub struct Shared {
    pub config: Arc<Config>,
    pub queue: Arc<dyn WorkQueue>,
    pub store: Arc<dyn RunStore>,
    /// The one door to the queue (publish, replay).
    pub sink: Sink,
    /// Live logs of runs in progress on this host.
    pub logs: RunLogs,
    pub metrics: Arc<Metrics>,
    /// Every configured token; none: mutating endpoints refuse everyone.
    pub tokens: Tokens,
    /// Read-only endpoints need the token too.
    pub protect_reads: bool,
    /// `POST /api/publish` is served.
    pub ingest: bool,
    /// A worker runs in this process (shown on the page).
    pub worker: bool,
    /// Fires on shutdown; ends live log streams so the server can close.
    pub shutdown: CancellationToken,
    depth_history: Mutex<depth::DepthHistory>,
}

pub type AppState = Arc<Shared>;

/// What `relflow serve` runs, besides the API.
pub struct Parts {
    pub tokens: Tokens,
    /// `POST /api/publish` is served.
    pub ingest: bool,
    /// A worker runs in this process.
    pub worker: bool,
}

impl Shared {
    pub fn new(
        config: Arc<Config>,
        backends: &relflow_engine::Backends,
        sink: Sink,
        metrics: Arc<Metrics>,
        parts: Parts,
        shutdown: CancellationToken,
    ) -> AppState {
        Arc::new(Shared {
            protect_reads: config.http.protect_reads,
            logs: RunLogs::new(&config.data_dir),
            config,
            queue: Arc::clone(&backends.queue),
            store: Arc::clone(&backends.store),
            sink,
            metrics,
            tokens: parts.tokens,
            ingest: parts.ingest,
            worker: parts.worker,
            shutdown,
            depth_history: Mutex::new(depth::DepthHistory::default()),
        })
    }

    /// The queue's depth, in flight counted over the whole fleet.
    async fn depth(&self) -> relflow_queue::Result<QueueDepth> {
        relflow_engine::fleet::queue_depth(&self.config, self.queue.as_ref(), self.store.as_ref()).await
    }

    fn record_depth(&self, depth: QueueDepth) {
        let sample = DepthSample { at: Utc::now(), depth };
        self.depth_history.lock().unwrap_or_else(|p| p.into_inner()).record(sample);
    }

    fn depth_history(&self) -> Vec<DepthSample> {
        self.depth_history.lock().unwrap_or_else(|p| p.into_inner()).samples()
    }
}

/// The HTTP app plus the tasks that run beside it, until shutdown.
pub struct Server {
    state: AppState,
    router: Router,
    tasks: JoinSet<(&'static str, Result<()>)>,
}

impl Server {
    /// The API, the page and `/metrics` (and `POST /api/publish` if ingest is on).
    pub fn new(state: AppState) -> Server {
        let router = Router::new()
            .merge(api::routes(Arc::clone(&state)))
            .merge(web::routes())
            .layer(axum::middleware::from_fn(web::security_headers));
        let mut server = Server { state, router, tasks: JoinSet::new() };
        let sampler = Arc::clone(&server.state);
        server.spawn("queue depth sampler", async move {
            loop {
                match sampler.depth().await {
                    Ok(d) => sampler.record_depth(d),
                    Err(e) => warn!("cannot read the queue depth for the chart: {e}"),
                }
                tokio::select! {
                    _ = sampler.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(depth::SAMPLE_EVERY) => {}
                }
            }
        });
        // A worker in this process prunes already (relflow-engine's retention);
        // a task that ends stops the server, so none without a retention.
        if !server.state.worker && server.state.config.retention.is_set() {
            let s = Arc::clone(&server.state);
            server.spawn("retention", async move {
                let (store, queue) = (Arc::clone(&s.store), Arc::clone(&s.queue));
                relflow_engine::retention::keep_pruning(store, queue, s.config.retention, s.shutdown.clone()).await;
                Ok(())
            });
        }
        server
    }

    /// Runs `task` beside the server. It should return when the shutdown
    /// token fires; an error from it stops the whole process.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = Result<()>> + Send + 'static) {
        self.tasks.spawn(async move { (name, task.await) });
    }

    /// Serves on `listen` (when given) until shutdown, then waits for every
    /// task. `on_listening` gets the bound address (port 0 picks a free one).
    pub async fn run(mut self, listen: Option<SocketAddr>, on_listening: impl FnOnce(SocketAddr)) -> Result<()> {
        let shutdown = self.state.shutdown.clone();
        if let Some(addr) = listen {
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} (in use? set [http] listen or pass --listen HOST:PORT)")
            })?;
            let bound = listener.local_addr()?;
            on_listening(bound);
            // http::serve adds the peer address, for the audit log.
            let app = self.router;
            let stop = shutdown.clone();
            self.tasks.spawn(async move {
                relflow_ingest::http::serve(listener, app, relflow_ingest::http::HttpLimits::default(), stop).await;
                ("http server", Ok(()))
            });
        }
        let mut failure = None;
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((name, Ok(()))) => {
                    if !shutdown.is_cancelled() {
                        info!("{name} finished; shutting down");
                    }
                }
                Ok((name, Err(e))) => {
                    warn!("{name} failed, shutting down: {e:#}");
                    failure.get_or_insert(e.context(name));
                }
                Err(e) => {
                    failure.get_or_insert(anyhow::anyhow!("a serve task panicked: {e}"));
                }
            }
            // One part ending ends the whole: a server without its worker
            // (or the reverse) is not what the operator started.
            shutdown.cancel();
        }
        failure.map_or(Ok(()), Err)
    }
}

impl Server {
    /// Adds routes (their own state already applied) beside the built-in ones.
    pub fn merge(&mut self, routes: Router) {
        self.router = std::mem::take(&mut self.router).merge(routes);
    }
}
