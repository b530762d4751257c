#![deny(missing_docs)]
//! relflow's results back onto the bus: every run announced, through an
//! outbox, and runs that trigger runs.
//!
//! ```text
//!  worker: record run start/finish --(same transaction)--> outbox (run store)
//!                                                            |
//!  Drainer, one loop per destination:  claim -> publish -> confirm -> mark sent
//!        |-> AmqpDestination    fedora-messaging: topic exchange, publisher confirms
//!        |-> FedmsgDestination  fedmsg: ZeroMQ PUB, X.509-signed envelopes
//!        '-> QueueDestination   the work queue, through the intake (chaining)
//! ```
//!
//! * [`RunEvent`] is the event body (`docs/announce.schema.json`), built
//!   from a run's start ([`RunEvent::started`]), its end
//!   ([`RunEvent::finished`]) or its message's dead letter
//!   ([`RunEvent::dead_lettered`]); ids are derived from what they report.
//! * [`to_outbox`] picks the destinations of one event: the configured
//!   buses, and the work queue when a rule would run for it.
//! * [`Drainer`] empties the outbox; [`destinations`] builds what it sends to.
//! * [`chain`] carries the chain depth and refuses too deep a message.
//! * [`lineage()`] and [`plan()`] are for operators: which run started a run
//!   and what it started; what a dry-run's message would announce.
//!
//! The crate takes its own options ([`AnnounceOptions`]); relflow-engine
//! maps `[announce]` to them.

mod amqp;
pub mod chain;
mod destination;
mod drain;
mod event;
mod fedmsg;
mod lineage;
mod options;
mod plan;
mod queue;
mod status;

use std::sync::Arc;

pub use amqp::AmqpDestination;
pub use destination::{Destination, Published};
pub use drain::{DrainError, DrainObserver, Drainer, POLL};
pub use event::{
    dead_letter_event_id, event_id, event_ids, reported_run, Cause, EventKind, FailedTask, RunEvent, RunStart, Tasks,
    MAX_TEXT_BYTES,
};
pub use fedmsg::FedmsgDestination;
pub use lineage::{lineage, view, Lineage, RunLink, RunView};
pub use options::{AmqpOptions, AnnounceOptions, FedmsgOptions, AMQP, FEDMSG, QUEUE};
pub use plan::{plan, Plan, Trigger};
pub use queue::QueueDestination;
use relflow_core::Rule;
use relflow_store::NewEvent;
pub use status::Pending;

/// The JSON Schema of every event body (draft 2020-12).
pub const SCHEMA: &str = include_str!("../../../docs/announce.schema.json");

/// Why the destinations cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// `[fedmsg.sign]` cannot be loaded.
    #[error("[announce.fedmsg]: cannot load [fedmsg.sign]: {0}")]
    Sign(#[from] relflow_fedmsg::SignError),
}

/// The destinations `options` name, plus the work queue through `sink`
/// (chaining) when given.
pub fn destinations(
    options: &AnnounceOptions,
    sink: Option<relflow_ingest::Sink>,
) -> Result<Vec<Arc<dyn Destination>>, AnnounceError> {
    let mut out: Vec<Arc<dyn Destination>> = Vec::new();
    if let Some(amqp) = &options.amqp {
        out.push(Arc::new(AmqpDestination::new(amqp.clone())));
    }
    if let Some(fedmsg) = &options.fedmsg {
        out.push(Arc::new(FedmsgDestination::new(fedmsg)?));
    }
    if let Some(sink) = sink {
        out.push(Arc::new(QueueDestination::new(sink)));
    }
    Ok(out)
}

/// The outbox row of `event`: to every configured bus, and to the work
/// queue when one of `rules` would run for it.
pub fn to_outbox(options: &AnnounceOptions, rules: &[Rule], event: &RunEvent) -> NewEvent {
    let mut new = event.to_new_event(&options.topic_prefix, Vec::new());
    if options.amqp.is_some() {
        new.destinations.push(AMQP.into());
    }
    if options.fedmsg.is_some() {
        new.destinations.push(FEDMSG.into());
    }
    if chain::triggers(rules, &chain::new_message(&new)) {
        new.destinations.push(QUEUE.into());
    }
    new
}
