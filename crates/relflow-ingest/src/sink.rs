//! Where every source delivers: validate, dedupe, enqueue, in that order.
//!
//! A source hands over what it got (a fedmsg envelope as bytes, or a
//! [`Message`] it built) and learns one of three things:
//!
//! * [`Outcome::Queued`]: the message is durable on the work queue;
//! * [`Outcome::Duplicate`]: its id was queued within the dedupe window;
//! * [`Outcome::Rejected`]: it can never be accepted (undecodable, bad
//!   signature, its id already queued with other content, ...), with the
//!   check that failed and a reason.
//!
//! In all three cases the source may let go of it (ack upstream). An `Err`
//! means the queue or the dedupe store failed: nothing was decided, and the
//! source must keep the message (not ack) and try again later.
//!
//! Every decision is counted ([`Sink::stats`]), logged, handed to the
//! [`Observer`] (the engine's `/metrics`), and broadcast ([`Sink::events`])
//! for whoever watches (tests, benches).
//!
//! This is the one door to the work queue: bus sources, webhooks, `relflow
//! publish`, `POST /api/publish` and dead-letter replays all come through it.
//! Queueing a message again on purpose is explicit ([`Sink::submit_forced`],
//! [`Sink::replay`]), never a side effect of skipping the dedupe check.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use relflow_core::config::{FedmsgConfig, Validate};
use relflow_core::{queue_payload_limit, Message, WRAPPING_ALLOWANCE};
use relflow_fedmsg::Verifier;
use relflow_queue::{QueueError, WorkQueue};
use relflow_schemas::Gate;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::auto::AutoBackfill;
use crate::dedupe::{Claim, Dedupe, DedupeError};
use crate::gaps::{Gaps, Seen};

/// What became of one incoming message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Queued,
    Duplicate,
    Rejected {
        /// The check that failed: `decode`, `topic_mismatch`, `too_large`,
        /// `hmac`, or a signature check (`unsigned`, `bad_signature`,
        /// `revoked`, `cert_expired`, `untrusted_issuer`, `policy_denied`, ...).
        check: String,
        reason: String,
    },
}

impl Outcome {
    pub fn rejected(check: impl Into<String>, reason: impl Into<String>) -> Outcome {
        Outcome::Rejected { check: check.into(), reason: reason.into() }
    }
}

/// One decision, as broadcast by [`Sink::events`].
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `fedmsg:<name>`, `amqp:<name>`, `webhook:<name>`.
    pub source: String,
    pub id: Option<String>,
    pub topic: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The sink could not decide: keep the message and retry.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot enqueue: {0}")]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Dedupe(#[from] DedupeError),
}

/// Counters since start, for `/metrics` and status lines.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub queued: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Rejections per failed check.
    pub rejected_by_check: BTreeMap<String, u64>,
    /// Enqueue or dedupe failures (the message was kept for a retry).
    pub errors: u64,
    /// Messages that failed their topic's schema (`[[source]] validate`);
    /// queued all the same, and dead-lettered by the worker under `reject`.
    pub schema_invalid: u64,
}

/// Where the sink keeps its dedupe window and what it checks against.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// The dedupe store is `data_dir/ingest.sqlite3`.
    pub data_dir: PathBuf,
    /// An id queued less than this long ago is a duplicate.
    pub dedupe_window: Duration,
    /// CA, CRL and routing policy for sources that require signatures.
    pub fedmsg: Option<FedmsgConfig>,
    /// Bigger messages are refused.
    pub max_message_bytes: usize,
    /// `[schemas] dir`, read when some source validates.
    pub schema_dir: PathBuf,
    /// `[[source]] validate`, by source label (see [`Gate::modes`]).
    pub validate: HashMap<String, Validate>,
    /// `[backfill] on_gap` / `on_start`; `None`: neither.
    pub auto_backfill: Option<Arc<AutoBackfill>>,
}

/// Told of every decision, synchronously and exactly once (unlike
/// [`Sink::events`], which drops events for slow receivers).
pub trait Observer: Send + Sync {
    fn decided(&self, event: &Event);

    /// A fedmsg message's sequence number was checked (see [`crate::gaps`]).
    fn sequenced(&self, _source: &str, _seen: &Seen) {}

    /// A source endpoint connected or lost its connection (see [`crate::links`]).
    fn linked(&self, _link: &crate::links::Link) {}

    /// A message failed its topic's schema under `mode` (`[[source]] validate`).
    fn schema_invalid(&self, _source: &str, _mode: Validate) {}
}

/// The `source` of events about dead letters put back on the queue.
pub const REPLAY_SOURCE: &str = "replay";

/// A fedmsg envelope (or fedora-messaging JSON) as raw bytes.
pub struct Envelope<'a> {
    /// `fedmsg:<name>`, ... (becomes [`Message::source`]).
    pub source: &'a str,
    pub bytes: &'a [u8],
    /// Verify the X.509 signature against `[fedmsg]` and refuse on failure.
    pub require_signature: bool,
    /// The ZeroMQ topic frame: must equal the envelope's `topic`.
    pub frame_topic: Option<&'a [u8]>,
}

/// Validates, dedupes and enqueues. Cheap to clone; share one per process
/// so all sources dedupe against each other.
#[derive(Clone)]
pub struct Sink {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Arc<dyn WorkQueue>,
    dedupe: Dedupe,
    verifier: Option<Arc<Verifier>>,
    max_bytes: usize,
    queued: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
    schema_invalid: AtomicU64,
    by_check: Mutex<BTreeMap<String, u64>>,
    events: broadcast::Sender<Event>,
    observer: OnceLock<Arc<dyn Observer>>,
    gaps: OnceLock<Gaps>,
    links: crate::links::Links,
    schemas: OnceLock<Gate>,
    auto_backfill: OnceLock<Arc<AutoBackfill>>,
}

impl Sink {
    pub fn new(queue: Arc<dyn WorkQueue>, dedupe: Dedupe, verifier: Option<Verifier>, max_bytes: usize) -> Sink {
        Sink {
            inner: Arc::new(Inner {
                queue,
                dedupe,
                verifier: verifier.map(Arc::new),
                max_bytes,
                queued: AtomicU64::new(0),
                duplicates: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                schema_invalid: AtomicU64::new(0),
                by_check: Mutex::new(BTreeMap::new()),
                events: broadcast::channel(4096).0,
                observer: OnceLock::new(),
                gaps: OnceLock::new(),
                links: crate::links::Links::default(),
                schemas: OnceLock::new(),
                auto_backfill: OnceLock::new(),
            }),
        }
    }

    /// The sink `options` describe: dedupe store `data_dir/ingest.sqlite3`,
    /// verifier from the `[fedmsg]` settings.
    pub fn open(options: &SinkOptions, queue: Arc<dyn WorkQueue>) -> anyhow::Result<Sink> {
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("cannot create data_dir {}", options.data_dir.display()))?;
        let dedupe = Dedupe::open(&options.data_dir.join("ingest.sqlite3"), options.dedupe_window)?;
        let verifier = match &options.fedmsg {
            None => None,
            Some(f) => Some(Verifier::from_config(f).context("[fedmsg]: cannot load the CA or CRL")?),
        };
        let sink = Sink::new(queue, dedupe, verifier, options.max_message_bytes);
        sink.track_gaps(Gaps::open(&options.data_dir.join("ingest.sqlite3"))?);
        let gate = Gate::open(&options.schema_dir, options.validate.clone()).context("[[source]] validate")?;
        if let Some(gate) = gate {
            sink.validate_with(gate);
        }
        if let Some(auto) = &options.auto_backfill {
            sink.backfill_with(Arc::clone(auto));
        }
        Ok(sink)
    }

    /// Fetches gaps from Datagrepper as they are seen, and gives
    /// [`auto_backfill`](Sink::auto_backfill) to whoever starts the sources.
    /// One per sink; a second call is ignored.
    pub fn backfill_with(&self, auto: Arc<AutoBackfill>) {
        let _ = self.inner.auto_backfill.set(auto);
    }

    /// `[backfill] on_gap` / `on_start`, when configured.
    pub fn auto_backfill(&self) -> Option<&Arc<AutoBackfill>> {
        self.inner.auto_backfill.get()
    }

    /// Checks the messages of the sources `gate` names against their
    /// schemas from now on. One gate per sink; a second call is ignored.
    pub fn validate_with(&self, gate: Gate) {
        let _ = self.inner.schemas.set(gate);
    }

    /// Logs and counts a message that fails its schema. It is queued all
    /// the same: under `reject` the worker dead-letters it with the
    /// reason, where it can be listed and replayed, never silently lost.
    fn check_schema(&self, msg: &Message) {
        let Some(verdict) = self.inner.schemas.get().and_then(|g| g.check(msg)) else { return };
        self.inner.schema_invalid.fetch_add(1, Ordering::Relaxed);
        if let Some(observer) = self.inner.observer.get() {
            observer.schema_invalid(&msg.source, verdict.mode);
        }
        let then = match verdict.mode {
            Validate::Reject => "the worker dead-letters it",
            _ => "queued anyway (validate = \"warn\")",
        };
        tracing::warn!(source = %msg.source, id = %msg.id, topic = %msg.topic, "fails its schema, {then}: {}", verdict.invalid);
    }

    /// Keeps fedmsg sequence numbers in `gaps` from now on (see
    /// [`crate::gaps`]). One store per sink; a second call is ignored.
    pub fn track_gaps(&self, gaps: Gaps) {
        let _ = self.inner.gaps.set(gaps);
    }

    /// The sequence store, when [`track_gaps`](Sink::track_gaps) gave one.
    pub fn gaps(&self) -> Option<&Gaps> {
        self.inner.gaps.get()
    }

    /// Records `i` from `producer` (a fedmsg source calls this for each
    /// message it queued), logs gaps and restarts and tells the observer.
    /// Without a sequence store this is a no-op.
    pub fn sequence(&self, source: &str, producer: &str, i: u64, ts: Option<f64>) {
        let Some(gaps) = self.gaps() else { return };
        let seen = match gaps.observe(producer, i, ts) {
            Ok(seen) => seen,
            // Losing track of a sequence number must not lose the message.
            Err(e) => return tracing::error!(source, "{e}"),
        };
        match &seen {
            Seen::Gap(g) => {
                tracing::warn!(
                    source,
                    producer,
                    missing = g.missing,
                    after = g.after,
                    before = g.before,
                    "fedmsg gap: {} message(s) lost before this one (`relflow backfill` can fetch them)",
                    g.missing
                );
                if let Some(auto) = self.auto_backfill() {
                    auto.gap(self, source, g);
                }
            }
            Seen::Restart { previous, now } => {
                tracing::info!(source, producer, previous, now, "fedmsg producer restarted (its `i` began again)")
            }
            Seen::First | Seen::InOrder => {}
        }
        if let Some(observer) = self.inner.observer.get() {
            observer.sequenced(source, &seen);
        }
    }

    /// Records that a source's endpoint is connected (`Ok`) or down
    /// (`Err(why)`), for `/readyz` and `/metrics`.
    pub fn link(&self, source: &str, endpoint: &str, state: Result<(), String>) {
        let link = self.inner.links.set(source, endpoint, state);
        if let Some(observer) = self.inner.observer.get() {
            observer.linked(&link);
        }
    }

    /// Every source endpoint's connection, as last reported.
    pub fn links(&self) -> Vec<crate::links::Link> {
        self.inner.links.all()
    }

    /// Tells `observer` of every decision from now on. One observer per
    /// sink; a second call is ignored.
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        let _ = self.inner.observer.set(observer);
    }

    /// Decodes a fedmsg envelope or fedora-messaging JSON, checks the topic
    /// frame and (when required) the signature, then [`submit`](Sink::submit)s it.
    pub async fn submit_envelope(&self, e: Envelope<'_>) -> Result<Outcome, SinkError> {
        let msg = match Message::decode(e.bytes, e.source, self.inner.max_bytes) {
            Ok(m) => m,
            Err(err) => return Ok(self.reject(e.source, None, None, "decode", err.to_string())),
        };
        if let Some(frame) = e.frame_topic {
            if frame != msg.topic.as_bytes() {
                let reason = format!(
                    "the ZeroMQ topic frame {:?} differs from the envelope's topic {:?}",
                    String::from_utf8_lossy(frame),
                    msg.topic
                );
                return Ok(self.reject(e.source, Some(&msg.id), Some(&msg.topic), "topic_mismatch", reason));
            }
        }
        if e.require_signature {
            let Some(verifier) = &self.inner.verifier else {
                let reason = "a signature is required but no [fedmsg] ca_cert is configured";
                return Ok(self.reject(e.source, Some(&msg.id), Some(&msg.topic), "no_ca", reason.into()));
            };
            if let Err(err) = verifier.verify(e.bytes) {
                return Ok(self.reject(e.source, Some(&msg.id), Some(&msg.topic), err.kind(), err.to_string()));
            }
        }
        self.submit(msg).await
    }

    /// Dedupes and enqueues a message a source built itself.
    pub async fn submit(&self, msg: Message) -> Result<Outcome, SinkError> {
        let payload = match self.payload(&msg) {
            Ok(payload) => payload,
            Err(rejected) => return Ok(rejected),
        };
        let digest = digest(&msg);
        let claim = self.inner.dedupe.claim(&msg.id, Some(&digest)).await.inspect_err(|_| self.count_error())?;
        let ticket = match claim {
            Claim::Seen => return Ok(self.duplicate(&msg)),
            Claim::Conflict => return Ok(self.conflict(&msg)),
            Claim::Fresh(ticket) => ticket,
        };
        self.check_schema(&msg);
        self.inner.queue.enqueue(&payload).await.inspect_err(|_| self.count_error())?;
        ticket.commit().inspect_err(|_| self.count_error())?;
        Ok(self.queued(&msg))
    }

    /// Like [`submit`](Sink::submit), and also a duplicate when `content_key`
    /// (a digest of the signed content) was queued within the window under
    /// any id: a captured webhook resent with a fresh delivery id does not
    /// run again.
    pub async fn submit_once(&self, msg: Message, content_key: &str) -> Result<Outcome, SinkError> {
        let ticket = match self.inner.dedupe.claim(content_key, None).await.inspect_err(|_| self.count_error())? {
            // No digest given, so never a conflict.
            Claim::Seen | Claim::Conflict => return Ok(self.duplicate(&msg)),
            Claim::Fresh(ticket) => ticket,
        };
        let outcome = self.submit(msg).await?;
        if matches!(outcome, Outcome::Queued) {
            ticket.commit().inspect_err(|_| self.count_error())?;
        }
        Ok(outcome)
    }

    fn duplicate(&self, msg: &Message) -> Outcome {
        self.inner.duplicates.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(source = %msg.source, id = %msg.id, topic = %msg.topic, "duplicate: already queued");
        self.emit(&msg.source, Some(&msg.id), Some(&msg.topic), Outcome::Duplicate);
        Outcome::Duplicate
    }

    /// A copy whose id was queued within the window with other content: a
    /// producer reused an id. Not queued (the first copy owns the id), and
    /// said out loud instead of dropped as a duplicate.
    fn conflict(&self, msg: &Message) -> Outcome {
        let reason = format!(
            "message id {:?} was queued within the dedupe window with a different topic or body; this copy is not \
             queued (a producer reusing ids? `relflow publish --force` queues it anyway)",
            msg.id
        );
        self.reject(&msg.source, Some(&msg.id), Some(&msg.topic), "id_conflict", reason)
    }

    /// Enqueues `msg` even if its id was queued within the window: an
    /// operator asked for it (`relflow publish --force`). Later copies
    /// dedupe against this one.
    pub async fn submit_forced(&self, msg: Message) -> Result<Outcome, SinkError> {
        let payload = match self.payload(&msg) {
            Ok(p) => p,
            Err(rejected) => return Ok(rejected),
        };
        self.inner.queue.enqueue(&payload).await.inspect_err(|_| self.count_error())?;
        self.inner.dedupe.remember(&msg.id, Some(&digest(&msg))).inspect_err(|_| self.count_error())?;
        Ok(self.queued(&msg))
    }

    /// Puts dead letter `id` back on the work queue as a fresh first attempt
    /// (an operator's replay). `false`: there is no such dead letter.
    pub async fn replay(&self, id: u64) -> Result<bool, SinkError> {
        if !self.inner.queue.replay(id).await.inspect_err(|_| self.count_error())? {
            return Ok(false);
        }
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        tracing::info!(dead_letter = id, "replayed");
        self.emit(REPLAY_SOURCE, None, None, Outcome::Queued);
        Ok(true)
    }

    /// The queue payload of `msg`, or its rejection when it is too large.
    /// The sources check what the sender sent against `max_message_bytes`;
    /// this bounds the wrapped message, which may be larger by what relflow
    /// adds around it ([`relflow_core::WRAPPING_ALLOWANCE`]).
    fn payload(&self, msg: &Message) -> Result<Vec<u8>, Outcome> {
        let payload = msg.to_queue_payload();
        let limit = queue_payload_limit(self.inner.max_bytes);
        if payload.len() > limit {
            let reason = format!(
                "the wrapped message is {} bytes, over max_message_bytes ({}) plus {} bytes for what relflow adds",
                payload.len(),
                self.inner.max_bytes,
                WRAPPING_ALLOWANCE
            );
            return Err(self.reject(&msg.source, Some(&msg.id), Some(&msg.topic), "too_large", reason));
        }
        Ok(payload)
    }

    fn queued(&self, msg: &Message) -> Outcome {
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        tracing::info!(source = %msg.source, id = %msg.id, topic = %msg.topic, "queued");
        self.emit(&msg.source, Some(&msg.id), Some(&msg.topic), Outcome::Queued);
        Outcome::Queued
    }

    /// Records a message a source refused before it was a [`Message`]
    /// (bad HMAC, body not JSON, ...), and returns the outcome to report.
    pub fn reject(&self, source: &str, id: Option<&str>, topic: Option<&str>, check: &str, reason: String) -> Outcome {
        self.inner.rejected.fetch_add(1, Ordering::Relaxed);
        *self.inner.by_check.lock().unwrap_or_else(|e| e.into_inner()).entry(check.to_owned()).or_default() += 1;
        tracing::warn!(source, id, topic, check, "rejected: {reason}");
        let outcome = Outcome::rejected(check, reason);
        self.emit(source, id, topic, outcome.clone());
        outcome
    }

    /// Every decision from now on. Slow receivers miss events (lagged), the
    /// sink never waits for them.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    pub fn stats(&self) -> Stats {
        let i = &self.inner;
        Stats {
            queued: i.queued.load(Ordering::Relaxed),
            duplicates: i.duplicates.load(Ordering::Relaxed),
            rejected: i.rejected.load(Ordering::Relaxed),
            rejected_by_check: i.by_check.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            errors: i.errors.load(Ordering::Relaxed),
            schema_invalid: i.schema_invalid.load(Ordering::Relaxed),
        }
    }

    /// Whether `id` was queued within the dedupe window (what `submit`
    /// would call a duplicate), without queueing anything.
    pub fn already_queued(&self, id: &str) -> Result<bool, SinkError> {
        Ok(self.inner.dedupe.seen(id)?)
    }

    /// The configured fedmsg verifier, if any.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.inner.verifier.as_deref()
    }

    pub fn max_bytes(&self) -> usize {
        self.inner.max_bytes
    }

    fn count_error(&self) {
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn emit(&self, source: &str, id: Option<&str>, topic: Option<&str>, outcome: Outcome) {
        let event =
            Event { source: source.to_owned(), id: id.map(str::to_owned), topic: topic.map(str::to_owned), outcome };
        if let Some(observer) = self.inner.observer.get() {
            observer.decided(&event);
        }
        // No receiver is fine: nobody is watching.
        let _ = self.inner.events.send(event);
    }
}

/// What a message carries, for telling a true copy from an id reused for
/// other content: its topic and body (headers and times differ between
/// relays of one event).
fn digest(msg: &Message) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(msg.topic.as_bytes());
    hash.update([0]);
    hash.update(serde_json::to_vec(&msg.body).unwrap_or_default());
    hex::encode(hash.finalize())
}
