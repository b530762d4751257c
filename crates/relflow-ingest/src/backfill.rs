//! Backfill: fetch what the bus lost from Datagrepper and feed it through
//! the one intake door.
//!
//! Fedora keeps every bus message in datanommer and serves it read-only as
//! Datagrepper (`https://apps.fedoraproject.org/datagrepper`). Its
//! `/v2/search` takes `start` and `end` (Unix seconds), `topic` (repeatable,
//! exact topics), `page` (from 1), `rows_per_page` (at most 100) and
//! `order`, and answers
//! `{"raw_messages": [...], "count", "page", "pages", "total", "arguments"}`;
//! each raw message is the envelope as it was published (fedmsg fields, or
//! fedora-messaging's `topic`/`body`/`headers`/`id`). The older `/raw`
//! endpoint takes the same arguments and answers the same shape, so one
//! client reads both ([`Datagrepper::new`] takes the endpoint path).
//!
//! Every fetched message goes to [`Sink::submit_envelope`], exactly like a
//! message from the bus: the signature is checked where the live source
//! would check it ([`SignedTopics`]), an id already queued within the dedupe
//! window is dropped as a duplicate, and the worker's (message id, rule)
//! success check skips whatever already ran. A backfill can therefore be
//! repeated, or overlap the live stream, without running anything twice.

use std::fmt;
use std::time::Duration;

use relflow_core::config::SourceConfig;
use relflow_core::Message;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sink::{Envelope, Outcome, Sink, SinkError};

/// The `source` of backfilled messages.
pub const BACKFILL_SOURCE: &str = "backfill:datagrepper";

/// Datagrepper's largest page.
pub const ROWS_PER_PAGE: u32 = 100;

/// Why a backfill stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("Datagrepper {url}: {detail}")]
    Http { url: String, detail: String },
    #[error("Datagrepper {url}: the answer is not a search result ({detail})")]
    Shape { url: String, detail: String },
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// What to fetch: `start..end` (Unix seconds), optionally only `topics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub start: f64,
    pub end: f64,
    /// Exact topics, asked of Datagrepper.
    pub topics: Vec<String>,
    /// Topic prefixes, checked here (Datagrepper matches topics only
    /// exactly): a fetched message whose topic starts with none of them is
    /// skipped. Empty: every topic. The automatic backfills use a fedmsg
    /// source's `topics`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
}

impl Window {
    fn wants(&self, topic: &str) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| topic.starts_with(p.as_str()))
    }
}

/// One page of a search.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub raw_messages: Vec<Value>,
    pub pages: u32,
    #[serde(default)]
    pub total: Option<u64>,
}

/// A Datagrepper endpoint.
pub struct Datagrepper {
    /// `<base>/v2/search` (or `<base>/raw`).
    endpoint: String,
    agent: ureq::Agent,
}

impl Datagrepper {
    /// `url` is Datagrepper's base (`https://apps.fedoraproject.org/datagrepper`),
    /// searched at `/v2/search`; a URL already ending in `/raw` or
    /// `/v2/search` is used as is.
    pub fn new(url: &str) -> Datagrepper {
        let url = url.trim_end_matches('/');
        let endpoint = if url.ends_with("/raw") || url.ends_with("/v2/search") {
            url.to_owned()
        } else {
            format!("{url}/v2/search")
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Datagrepper { endpoint, agent }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Page `page` (from 1) of `window`, oldest first. Blocking.
    pub fn page(&self, window: &Window, page: u32) -> Result<Page, BackfillError> {
        let http = |detail: String| BackfillError::Http { url: self.endpoint.clone(), detail };
        let mut req = self
            .agent
            .get(&self.endpoint)
            .query("start", window.start.to_string())
            .query("end", window.end.to_string())
            .query("page", page.to_string())
            .query("rows_per_page", ROWS_PER_PAGE.to_string())
            .query("order", "asc");
        for t in &window.topics {
            req = req.query("topic", t);
        }
        let mut resp = req.call().map_err(|e| http(e.to_string()))?;
        let status = resp.status();
        let body = resp.body_mut().with_config().limit(256 << 20).read_to_string().map_err(|e| http(e.to_string()))?;
        if !status.is_success() {
            return Err(http(format!("HTTP {status}: {}", body.chars().take(200).collect::<String>())));
        }
        serde_json::from_str(&body)
            .map_err(|e| BackfillError::Shape { url: self.endpoint.clone(), detail: e.to_string() })
    }
}

/// The topics whose messages must carry a valid fedmsg signature: those a
/// fedmsg `[[source]]` with `require_signature` would receive. A
/// backfilled message is held to the rule of the source it would have
/// come through.
#[derive(Debug, Clone, Default)]
pub struct SignedTopics(Vec<String>);

impl SignedTopics {
    pub fn from_sources(sources: &[SourceConfig]) -> SignedTopics {
        let mut prefixes = Vec::new();
        for s in sources {
            if let SourceConfig::Fedmsg(f) = s {
                if f.require_signature {
                    prefixes.extend(if f.topics.is_empty() { vec![String::new()] } else { f.topics.clone() });
                }
            }
        }
        SignedTopics(prefixes)
    }

    pub fn require(&self, topic: &str) -> bool {
        self.0.iter().any(|p| topic.starts_with(p.as_str()))
    }
}

/// What a backfill did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub endpoint: String,
    pub window: Option<Window>,
    pub fetched: u64,
    /// Queued now (with `dry_run`: would be).
    pub queued: u64,
    pub already_seen: u64,
    pub rejected: u64,
    /// Outside the window's `prefixes`: not submitted.
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped: u64,
    /// Rejections, one line each: `id: check: reason`.
    pub rejections: Vec<String>,
    pub dry_run: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would queue" } else { "queued" };
        write!(f, "fetched {}, {verb} {} new, {} already seen", self.fetched, self.queued, self.already_seen)?;
        if self.skipped > 0 {
            write!(f, ", {} outside the source's topics", self.skipped)?;
        }
        if self.rejected > 0 {
            write!(f, ", {} rejected", self.rejected)?;
            for r in &self.rejections {
                write!(f, "\n  rejected {r}")?;
            }
        }
        Ok(())
    }
}

/// Fetches every page of `window` and submits each message to `sink`
/// (only counts, with `dry_run`). `progress(fetched, total)` is called after
/// each page.
pub async fn run(
    dg: Datagrepper,
    window: Window,
    sink: &Sink,
    signed: &SignedTopics,
    dry_run: bool,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<Report, BackfillError> {
    let mut report = Report { endpoint: dg.endpoint.clone(), dry_run, ..Default::default() };
    let dg = std::sync::Arc::new(dg);
    let mut page = 1;
    loop {
        let (client, w) = (dg.clone(), window.clone());
        let got = tokio::task::spawn_blocking(move || client.page(&w, page))
            .await
            .map_err(|e| BackfillError::Http { url: dg.endpoint.clone(), detail: e.to_string() })??;
        for raw in &got.raw_messages {
            report.fetched += 1;
            if !window.wants(raw.get("topic").and_then(Value::as_str).unwrap_or_default()) {
                report.skipped += 1;
                continue;
            }
            take(sink, signed, dry_run, raw, &mut report).await?;
        }
        progress(report.fetched, got.total);
        if page >= got.pages || got.raw_messages.is_empty() {
            break;
        }
        page += 1;
    }
    report.window = Some(window);
    Ok(report)
}

/// One fetched message through the intake (or, in a dry run, the dedupe check only).
async fn take(
    sink: &Sink,
    signed: &SignedTopics,
    dry_run: bool,
    raw: &Value,
    report: &mut Report,
) -> Result<(), BackfillError> {
    let bytes = raw.to_string();
    let topic = raw.get("topic").and_then(Value::as_str).unwrap_or_default();
    let outcome = if dry_run {
        match Message::decode(bytes.as_bytes(), BACKFILL_SOURCE, sink.max_bytes()) {
            Ok(m) if sink.already_queued(&m.id)? => Outcome::Duplicate,
            Ok(_) => Outcome::Queued,
            Err(e) => Outcome::rejected("decode", e.to_string()),
        }
    } else {
        let envelope = Envelope {
            source: BACKFILL_SOURCE,
            bytes: bytes.as_bytes(),
            require_signature: signed.require(topic),
            frame_topic: None,
        };
        sink.submit_envelope(envelope).await?
    };
    match outcome {
        Outcome::Queued => report.queued += 1,
        Outcome::Duplicate => report.already_seen += 1,
        Outcome::Rejected { check, reason } => {
            report.rejected += 1;
            let id = raw.get("msg_id").or_else(|| raw.get("id")).and_then(Value::as_str).unwrap_or("?");
            report.rejections.push(format!("{id}: {check}: {reason}"));
        }
    }
    Ok(())
}
