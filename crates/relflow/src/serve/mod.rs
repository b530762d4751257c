//! `relflow serve`: one process with the HTTP API, the web page, `/metrics`,
//! ingest and (optionally) a worker.
//!
//! The seam for more ingest sources (fedmsg, AMQP, webhooks) is [`Server`]:
//! build it, then [`Server::merge`] extra routes (e.g. `POST /hooks/{name}`)
//! and [`Server::spawn`] extra long-running tasks (e.g. a ZeroMQ subscriber);
//! both get an [`Ingest`] handle from [`Server::ingest`], which is the one
//! way a message gets on the queue here (it also counts it for `/metrics`).
//! Every task gets the same shutdown token: when it fires (SIGTERM), tasks
//! stop, the worker drains and the HTTP server closes.

mod api;
mod auth;
mod ingest;
mod logs;
mod web;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use chrono::{DateTime, Utc};
use relflow_core::Config;
use relflow_queue::{QueueDepth, WorkQueue};
use relflow_store::RunStore;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use auth::Token;
pub use ingest::Ingest;

use crate::metrics::Metrics;

/// How often the queue depth is sampled for the page's chart, and how many
/// samples are kept (24 hours' worth).
const DEPTH_EVERY: Duration = Duration::from_secs(60);
const DEPTH_KEEP: usize = 24 * 60;

/// What every handler can reach.
pub struct Shared {
    pub config: Arc<Config>,
    pub queue: Arc<dyn WorkQueue>,
    pub store: Arc<dyn RunStore>,
    pub metrics: Arc<Metrics>,
    /// `None`: no token configured, so mutating endpoints refuse everyone.
    pub token: Option<Token>,
    /// Read-only endpoints need the token too.
    pub protect_reads: bool,
    /// `POST /api/publish` is served.
    pub ingest: bool,
    /// A worker runs in this process (shown on the page).
    pub worker: bool,
    /// Fires on shutdown; ends live log streams so the server can close.
    pub shutdown: CancellationToken,
    depth_history: Mutex<VecDeque<DepthSample>>,
}

pub type AppState = Arc<Shared>;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct DepthSample {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub depth: QueueDepth,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Arc<Config>,
        queue: Arc<dyn WorkQueue>,
        store: Arc<dyn RunStore>,
        metrics: Arc<Metrics>,
        token: Option<Token>,
        ingest: bool,
        worker: bool,
        shutdown: CancellationToken,
    ) -> AppState {
        let protect_reads = config.http.protect_reads;
        Arc::new(Shared {
            config,
            queue,
            store,
            metrics,
            token,
            protect_reads,
            ingest,
            worker,
            shutdown,
            depth_history: Mutex::new(VecDeque::new()),
        })
    }

    fn record_depth(&self, depth: QueueDepth) {
        let mut h = self.depth_history.lock().unwrap_or_else(|p| p.into_inner());
        if h.len() >= DEPTH_KEEP {
            h.pop_front();
        }
        h.push_back(DepthSample { at: Utc::now(), depth });
    }

    fn depth_history(&self) -> Vec<DepthSample> {
        self.depth_history.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect()
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
                match sampler.queue.depth().await {
                    Ok(d) => sampler.record_depth(d),
                    Err(e) => warn!("cannot read the queue depth for the chart: {e}"),
                }
                tokio::select! {
                    _ = sampler.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(DEPTH_EVERY) => {}
                }
            }
        });
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
            let app = self.router;
            let stop = shutdown.clone();
            self.tasks.spawn(async move {
                let served = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
                ("http server", served.context("the HTTP server failed"))
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

/// The seam for ingest sources that live outside this module (`relflow
/// bridge`'s fedmsg, AMQP and webhook sources); unused until they plug in.
#[allow(dead_code)]
impl Server {
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// How extra sources put messages on the queue.
    pub fn ingest(&self) -> Ingest {
        Ingest::new(&self.state)
    }

    /// Fires on SIGTERM/Ctrl-C; spawned tasks must return soon after.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Adds routes (their own state already applied) beside the built-in ones.
    /// Mutating routes should check the token with [`Token::check`] or
    /// [`Server::require_token`].
    pub fn merge(&mut self, routes: Router) {
        self.router = std::mem::take(&mut self.router).merge(routes);
    }

    /// Wraps `routes` so they answer 401 without the configured bearer token.
    pub fn require_token(&self, routes: Router) -> Router {
        routes.layer(axum::middleware::from_fn_with_state(Arc::clone(&self.state), auth::require_token))
    }
}
