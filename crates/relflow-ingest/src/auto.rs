//! The automatic backfills (`[backfill] on_gap`, `on_start`): the same
//! Datagrepper fetch as `relflow backfill`, started by relflow itself.
//!
//! * **on_gap**: a fedmsg source saw a jump in a producer's `i`
//!   ([`crate::gaps`]); the time between the messages around the gap is
//!   fetched, for that source's topic prefixes.
//! * **on_start**: `relflow bridge` / `serve` start; the last DURATION is
//!   fetched for every fedmsg source's topics: what was sent while relflow
//!   was down. The live sources start first, so nothing falls between.
//!
//! A failed on_gap fetch is retried a few times (`GAP_RETRIES`).
//!
//! Everything fetched goes through the one intake ([`crate::backfill::run`]),
//! so what was already queued is dropped as a duplicate. AMQP sources are
//! left out: their durable queue kept what was sent meanwhile.
//!
//! Datagrepper stores a message a moment after it was sent: a gap fetched
//! the instant it is seen can miss its newest messages. `relflow backfill
//! --since` over the same time later finds them (and only them).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relflow_core::config::{BackfillConfig, SourceConfig};

use crate::backfill::{self, BackfillError, Datagrepper, Report, SignedTopics, Window};
use crate::gaps::Gap;
use crate::Sink;

/// How long an on_gap fetch that failed waits before each retry.
const GAP_RETRIES: [Duration; 3] = [Duration::from_secs(2), Duration::from_secs(10), Duration::from_secs(30)];

/// What `[backfill]` asks relflow to fetch by itself.
#[derive(Debug)]
pub struct AutoBackfill {
    url: String,
    on_gap: bool,
    on_start: Option<Duration>,
    /// Each fedmsg source's label (`fedmsg:<name>`) and topic prefixes
    /// (empty: everything).
    sources: Vec<(String, Vec<String>)>,
    signed: SignedTopics,
    /// One fetch at a time: gaps come in bursts after a reconnect, and
    /// Datagrepper is a shared service.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl AutoBackfill {
    /// `None` when `config` asks for neither, or there is no fedmsg source.
    pub fn new(config: &BackfillConfig, sources: &[SourceConfig]) -> Option<Arc<AutoBackfill>> {
        let fedmsg: Vec<(String, Vec<String>)> = sources
            .iter()
            .filter_map(|s| match s {
                SourceConfig::Fedmsg(f) => Some((s.label(), f.topics.clone())),
                _ => None,
            })
            .collect();
        if fedmsg.is_empty() || !(config.on_gap || config.on_start.is_some()) {
            return None;
        }
        Some(Arc::new(AutoBackfill {
            url: config.url.clone(),
            on_gap: config.on_gap,
            on_start: config.on_start,
            sources: fedmsg,
            signed: SignedTopics::from_sources(sources),
            one_at_a_time: tokio::sync::Mutex::new(()),
        }))
    }

    /// `on_start`: fetches the last DURATION into `sink`; `None` when it is
    /// not configured.
    pub async fn start(&self, sink: &Sink) -> Option<Result<Report, BackfillError>> {
        let ago = self.on_start?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        // A source taking every topic makes the union every topic.
        let everything = self.sources.iter().any(|(_, p)| p.is_empty());
        let prefixes = if everything { Vec::new() } else { self.sources.iter().flat_map(|(_, p)| p.clone()).collect() };
        let window = Window { start: now - ago.as_secs_f64(), end: now, topics: Vec::new(), prefixes };
        Some(self.fetch(sink, window).await)
    }

    /// `on_gap`: fetches the time around `gap`, seen by `source`, in the
    /// background. A gap without timestamps on both sides (a producer
    /// restart seen late) has no window to fetch: logged, for `relflow
    /// backfill`.
    pub(crate) fn gap(self: &Arc<Self>, sink: &Sink, source: &str, gap: &Gap) {
        if !self.on_gap {
            return;
        }
        let Some((_, prefixes)) = self.sources.iter().find(|(label, _)| label == source) else { return };
        let (Some(start), Some(end)) = (gap.after_ts, gap.before_ts) else {
            return tracing::warn!(source, producer = %gap.producer, "on_gap: no timestamps around this gap to fetch");
        };
        let window = Window { start, end, topics: Vec::new(), prefixes: prefixes.clone() };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (me, sink, source) = (Arc::clone(self), sink.clone(), source.to_owned());
        runtime.spawn(async move { me.fetch_gap(&sink, &source, window).await });
    }

    /// Fetches a gap's window, retrying a failed fetch after each of
    /// [`GAP_RETRIES`]: a Datagrepper blip must not cost the gap, and a
    /// fetch repeated finds only duplicates, which the intake drops.
    async fn fetch_gap(&self, sink: &Sink, source: &str, window: Window) {
        let mut waits = GAP_RETRIES.iter();
        loop {
            let e = match self.fetch(sink, window.clone()).await {
                Ok(report) => return tracing::info!(source, "on_gap backfill: {report}"),
                Err(e) => e,
            };
            let Some(wait) = waits.next() else {
                let tries = GAP_RETRIES.len() + 1;
                return tracing::warn!(
                    source,
                    "on_gap backfill failed {tries} times, giving up (`relflow backfill --since` can fetch it): {e}"
                );
            };
            tracing::warn!(source, "on_gap backfill failed, retrying in {}s: {e}", wait.as_secs());
            tokio::time::sleep(*wait).await;
        }
    }

    async fn fetch(&self, sink: &Sink, window: Window) -> Result<Report, BackfillError> {
        let _turn = self.one_at_a_time.lock().await;
        backfill::run(Datagrepper::new(&self.url), window, sink, &self.signed, false, |_, _| {}).await
    }
}
