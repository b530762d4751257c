//! Prometheus metrics: what flows through this process, for `/metrics`.
//!
//! The intake reports every decision through [`relflow_ingest::Observer`]
//! (so every source is counted, whichever door it came through); the
//! worker reports its decisions directly.
//!
//! Counters live in memory and start at zero with the process, as Prometheus
//! expects (`rate()` handles restarts). Queue depth is read from the queue at
//! scrape time instead, so it is right even when other processes publish or
//! work the same queue.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use relflow_queue::QueueDepth;

use crate::fleet::{FleetView, WorkerState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    source: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    rule: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnnounceLabels {
    destination: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabels {
    source: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SchemaLabels {
    source: String,
    /// `warn` (queued all the same) or `reject` (dead-lettered by the worker).
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// Every metric relflow exports. Cheap to share (`Arc`); all methods take `&self`.
pub struct Metrics {
    registry: Registry,
    received: Family<SourceLabels, Counter>,
    duplicates: Family<SourceLabels, Counter>,
    rejected: Family<RejectLabels, Counter>,
    matched: Family<SourceLabels, Counter>,
    noop: Family<SourceLabels, Counter>,
    runs: Family<RunLabels, Counter>,
    duration: Family<RuleLabels, Histogram, fn() -> Histogram>,
    retries: Family<RuleLabels, Counter>,
    dead_letters: Family<SourceLabels, Counter>,
    replays: Counter,
    queue_depth: Family<StateLabels, Gauge>,
    workers: Family<StateLabels, Gauge>,
    busy: Gauge,
    slots: Gauge,
    announcements: Family<AnnounceLabels, Counter>,
    announce_pending: Family<DestinationLabels, Gauge>,
    fedmsg_gaps: Family<SourceLabels, Counter>,
    fedmsg_missing: Family<SourceLabels, Counter>,
    source_up: Family<LinkLabels, Gauge>,
    fedmsg_restarts: Family<SourceLabels, Counter>,
    schema_invalid: Family<SchemaLabels, Counter>,
}

fn duration_histogram() -> Histogram {
    // 0.5 s .. ~4.5 h: playbooks take seconds to hours.
    Histogram::new(exponential_buckets(0.5, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("relflow");
        let m = Metrics {
            received: Family::default(),
            duplicates: Family::default(),
            rejected: Family::default(),
            matched: Family::default(),
            noop: Family::default(),
            runs: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            retries: Family::default(),
            dead_letters: Family::default(),
            replays: Counter::default(),
            queue_depth: Family::default(),
            workers: Family::default(),
            busy: Gauge::default(),
            slots: Gauge::default(),
            announcements: Family::default(),
            announce_pending: Family::default(),
            fedmsg_gaps: Family::default(),
            fedmsg_missing: Family::default(),
            fedmsg_restarts: Family::default(),
            schema_invalid: Family::default(),
            source_up: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "messages_received",
            "Messages accepted by ingest in this process, by source",
            m.received.clone(),
        );
        registry.register(
            "messages_duplicate",
            "Messages dropped by ingest in this process as already queued within the dedupe window, by source",
            m.duplicates.clone(),
        );
        registry.register(
            "messages_rejected",
            "Messages refused (by ingest, or dead-lettered by the worker as undecodable), by source and reason",
            m.rejected.clone(),
        );
        registry.register("messages_matched", "Messages that matched at least one rule, by source", m.matched.clone());
        registry.register(
            "messages_noop",
            "Messages that matched no rule (acked as no-ops), by source",
            m.noop.clone(),
        );
        registry.register("runs", "Playbook runs finished, by rule and outcome", m.runs.clone());
        registry.register_with_unit(
            "run_duration",
            "Playbook run duration, by rule",
            prometheus_client::registry::Unit::Seconds,
            m.duration.clone(),
        );
        registry.register("retries", "Messages put back for a delayed retry, by the failing rule", m.retries.clone());
        registry.register("dead_letters", "Messages dead-lettered by this process, by source", m.dead_letters.clone());
        registry.register("dead_letter_replays", "Dead letters replayed by this process", m.replays.clone());
        registry.register(
            "queue_depth",
            "Messages on the work queue by state (read at scrape time)",
            m.queue_depth.clone(),
        );
        registry.register(
            "workers",
            "Workers seen in the last day by state (alive, stopped, lost: stopped beating), from their heartbeats in \
             the run store (read at scrape time)",
            m.workers.clone(),
        );
        registry.register("worker_busy_slots", "Playbook runs in progress in this process", m.busy.clone());
        registry.register("worker_slots", "Playbook runs this process may run at once", m.slots.clone());
        registry.register(
            "announcements",
            "Run events this process announced, by destination and outcome (sent, failed: a publish that will be \
             retried, dropped: over [announce] max_pending)",
            m.announcements.clone(),
        );
        registry.register(
            "announcements_pending",
            "Run events waiting in the outbox, by destination (read every 30 s by a worker's drainer)",
            m.announce_pending.clone(),
        );
        registry.register(
            "fedmsg_gaps",
            "Jumps in a fedmsg producer's `i` seen by this process (messages lost on the bus), by source",
            m.fedmsg_gaps.clone(),
        );
        registry.register(
            "fedmsg_missing_messages",
            "fedmsg messages lost in those gaps (`relflow backfill` fetches them), by source",
            m.fedmsg_missing.clone(),
        );
        registry.register(
            "fedmsg_producer_restarts",
            "fedmsg producers whose `i` began again (a publisher restart, not a loss), by source",
            m.fedmsg_restarts.clone(),
        );
        registry.register(
            "messages_schema_invalid",
            "Messages that failed their topic's schema at ingest, by source and `[[source]] validate` mode",
            m.schema_invalid.clone(),
        );
        registry.register(
            "source_up",
            "1 while a source endpoint is connected, 0 while it is down and being retried, by source and endpoint",
            m.source_up.clone(),
        );
        Metrics { registry, ..m }
    }

    /// `reason` is a short fixed word (`too_large`, `invalid`, `undecodable`...),
    /// never free text: each value makes a time series.
    pub fn rejected(&self, source: &str, reason: &str) {
        self.rejected.get_or_create(&RejectLabels { source: source.into(), reason: reason.into() }).inc();
    }

    /// A message matched at least one rule.
    pub fn matched(&self, source: &str) {
        self.matched.get_or_create(&SourceLabels { source: source.into() }).inc();
    }

    /// A message matched no rule.
    pub fn noop(&self, source: &str) {
        self.noop.get_or_create(&SourceLabels { source: source.into() }).inc();
    }

    /// A run ended with `outcome` (the run store's status word) after `took`.
    pub fn run_finished(&self, rule: &str, outcome: &str, took: Duration) {
        self.runs.get_or_create(&RunLabels { rule: rule.into(), outcome: outcome.into() }).inc();
        self.duration.get_or_create(&RuleLabels { rule: rule.into() }).observe(took.as_secs_f64());
    }

    /// A message goes back for a retry because these rules failed.
    pub fn retried(&self, rules: &[&str]) {
        for rule in rules {
            self.retries.get_or_create(&RuleLabels { rule: (*rule).into() }).inc();
        }
    }

    /// A message was dead-lettered.
    pub fn dead_lettered(&self, source: &str) {
        self.dead_letters.get_or_create(&SourceLabels { source: source.into() }).inc();
    }

    /// How many runs this process may run at once.
    pub fn set_slots(&self, n: usize) {
        self.slots.set(n as i64);
    }

    /// Marks one slot busy until the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> BusyGuard {
        self.busy.inc();
        BusyGuard(Arc::clone(self))
    }

    /// The text exposition format, with the queue depth and the fleet as
    /// read just now.
    pub fn render(&self, depth: Option<QueueDepth>, fleet: Option<&FleetView>) -> String {
        if let Some(f) = fleet {
            for state in [WorkerState::Alive, WorkerState::Stopped, WorkerState::Lost] {
                let label = StateLabels { state: state.as_str().into() };
                self.workers.get_or_create(&label).set(f.count(state) as i64);
            }
        }
        if let Some(d) = depth {
            for (state, n) in [("ready", d.ready), ("in_flight", d.in_flight), ("delayed", d.delayed), ("dead", d.dead)]
            {
                self.queue_depth.get_or_create(&StateLabels { state: state.into() }).set(n as i64);
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl relflow_ingest::Observer for Metrics {
    fn decided(&self, e: &relflow_ingest::Event) {
        use relflow_ingest::Outcome;
        let source = SourceLabels { source: e.source.clone() };
        match &e.outcome {
            Outcome::Queued if e.source == relflow_ingest::REPLAY_SOURCE => {
                self.replays.inc();
            }
            Outcome::Queued => {
                self.received.get_or_create(&source).inc();
            }
            Outcome::Duplicate => {
                self.duplicates.get_or_create(&source).inc();
            }
            Outcome::Rejected { check, .. } => self.rejected(&e.source, check),
        }
    }

    fn linked(&self, link: &relflow_ingest::Link) {
        let labels = LinkLabels { source: link.source.clone(), endpoint: link.endpoint.clone() };
        self.source_up.get_or_create(&labels).set(i64::from(link.up));
    }

    fn sequenced(&self, source: &str, seen: &relflow_ingest::gaps::Seen) {
        use relflow_ingest::gaps::Seen;
        let source = SourceLabels { source: source.into() };
        match seen {
            Seen::Gap(g) => {
                self.fedmsg_gaps.get_or_create(&source).inc();
                self.fedmsg_missing.get_or_create(&source).inc_by(g.missing);
                if g.after == 0 {
                    self.fedmsg_restarts.get_or_create(&source).inc();
                }
            }
            Seen::Restart { .. } => {
                self.fedmsg_restarts.get_or_create(&source).inc();
            }
            Seen::First | Seen::InOrder => {}
        }
    }

    fn schema_invalid(&self, source: &str, mode: relflow_core::config::Validate) {
        use relflow_core::config::Validate;
        let mode = match mode {
            Validate::Warn => "warn",
            Validate::Reject => "reject",
            Validate::Off => "off",
        };
        self.schema_invalid.get_or_create(&SchemaLabels { source: source.into(), mode: mode.into() }).inc();
    }
}

impl relflow_announce::DrainObserver for Metrics {
    fn sent(&self, destination: &str, n: u64) {
        self.announced(destination, "sent").inc_by(n);
    }

    fn failed(&self, destination: &str) {
        self.announced(destination, "failed").inc();
    }

    fn dropped(&self, n: u64) {
        self.announced("any", "dropped").inc_by(n);
    }

    fn backlog(&self, backlog: &[relflow_store::Backlog]) {
        for b in backlog {
            let labels = DestinationLabels { destination: b.destination.clone() };
            self.announce_pending.get_or_create(&labels).set(i64::try_from(b.pending).unwrap_or(i64::MAX));
        }
    }
}

impl Metrics {
    fn announced(&self, destination: &str, outcome: &str) -> Counter {
        self.announcements
            .get_or_create(&AnnounceLabels { destination: destination.into(), outcome: outcome.into() })
            .clone()
    }
}

/// A busy worker slot; see [`Metrics::busy`].
pub struct BusyGuard(Arc<Metrics>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.dec();
    }
}

#[cfg(test)]
mod tests {
    use relflow_announce::DrainObserver;
    use relflow_store::Backlog;

    use super::Metrics;

    #[test]
    fn announcements_are_counted_by_destination_and_outcome() {
        let m = Metrics::new();
        m.sent("amqp", 3);
        m.failed("amqp");
        m.dropped(2);
        let waiting = Backlog { destination: "fedmsg".into(), pending: 7, oldest: None, last_error: None };
        m.backlog(&[waiting]);
        let text = m.render(None, None);
        for line in [
            "relflow_announcements_total{destination=\"amqp\",outcome=\"sent\"} 3",
            "relflow_announcements_total{destination=\"amqp\",outcome=\"failed\"} 1",
            "relflow_announcements_total{destination=\"any\",outcome=\"dropped\"} 2",
            "relflow_announcements_pending{destination=\"fedmsg\"} 7",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn fedmsg_gaps_and_restarts_are_counted_by_source() {
        use relflow_ingest::gaps::{Gap, Seen};
        use relflow_ingest::Observer;
        let m = Metrics::new();
        let gap = |after, missing| Gap {
            producer: "p".into(),
            after,
            before: after + missing + 1,
            missing,
            after_ts: None,
            before_ts: None,
            detected_at: 0,
        };
        m.sequenced("fedmsg:bus", &Seen::Gap(gap(10, 4)));
        m.sequenced("fedmsg:bus", &Seen::Gap(gap(0, 2)));
        m.sequenced("fedmsg:bus", &Seen::Restart { previous: 9, now: 1 });
        m.sequenced("fedmsg:bus", &Seen::InOrder);
        let text = m.render(None, None);
        for line in [
            "relflow_fedmsg_gaps_total{source=\"fedmsg:bus\"} 2",
            "relflow_fedmsg_missing_messages_total{source=\"fedmsg:bus\"} 6",
            "relflow_fedmsg_producer_restarts_total{source=\"fedmsg:bus\"} 2",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn a_source_endpoint_is_up_or_down_by_the_last_report() {
        use relflow_ingest::{Links, Observer};
        let (m, links) = (Metrics::new(), Links::default());
        m.linked(&links.set("fedmsg:bus", "tcp://hub:9940", Err("cannot connect".into())));
        assert!(m
            .render(None, None)
            .contains("relflow_source_up{source=\"fedmsg:bus\",endpoint=\"tcp://hub:9940\"} 0"));
        m.linked(&links.set("fedmsg:bus", "tcp://hub:9940", Ok(())));
        assert!(m
            .render(None, None)
            .contains("relflow_source_up{source=\"fedmsg:bus\",endpoint=\"tcp://hub:9940\"} 1"));
    }
}
