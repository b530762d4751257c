#![deny(missing_docs)]
//! relflow's engine: everything between the work queue and the run store.
//!
//! ```text
//!  WorkQueue::claim -> decode -> match rules -> run each playbook -> record the run -> settle
//!       ^                                         (Runner)           (RunStore)       ack | retry |
//!       |                                                                             dead letter | release
//!  Sink (the one door: bus sources, webhooks, `relflow publish`, POST /api/publish, replay)
//! ```
//!
//! * [`Worker`] is the loop: it claims deliveries, runs the rules they
//!   match (bounded concurrency, concurrency groups across workers), records
//!   every run, and settles the delivery.
//! * [`settle()`] is the decision table, a pure function: what the queue is
//!   told follows from what happened, nothing else.
//! * [`Backends`] opens the queue and store the config names; [`options`]
//!   is the one place that maps the config to each component's options.
//! * [`RunLogs`] is how a running run's log is shared with `relflow serve`.
//! * [`control`] is what operators ask of runs (re-run, cancel, approve,
//!   deny) and a message's whole history; the worker honours it
//!   (`history.rs`, `run.rs`, `approval.rs`).
//! * [`retention`] prunes old runs, logs and dead letters (`[retention]`).
//! * [`Metrics`] counts what flows through the process for `/metrics`.
//! * With `[announce]`, every run's events go into the outbox with the run
//!   state change they report, and the worker drains the outbox onto the
//!   buses and (chaining) the work queue (`announce.rs`, relflow_announce).
//! * [`fleet`]: each worker's heartbeat in the run store, and the fleet
//!   (who is alive, what each runs, the real in-flight count) read back.
//! * [`Timers`] fires `[[timer]]` slots, one message per slot across every
//!   worker (`timers.rs`, relflow_store::timers).
//!
//! The `relflow` binary is a face over this crate: CLI, HTTP and systemd.

mod announce;
mod approval;
mod backends;
pub mod control;
mod dead_letters;
mod failpoint;
pub mod fleet;
mod history;
mod kept;
mod locks;
mod logs;
mod metrics;
mod noops;
pub mod options;
mod patience;
mod record;
pub mod retention;
mod run;
pub mod settle;
mod stateful;
mod tally;
pub mod timers;
mod worker;

pub use announce::WorkerError;
pub use approval::expired_reason;
pub use backends::{open_queue, open_store, BackendError, Backends};
pub use dead_letters::{already_succeeded, AlreadySucceeded, DeadLetterView};
pub use logs::RunLogs;
pub use metrics::Metrics;
pub use record::extra_vars;
pub use settle::{settle, Settle};
pub use stateful::{batch_views, would_buffer, BatchView, BATCH_TOPIC};
pub use tally::Tally;
pub use timers::{timer_views, TimerView, Timers};
pub use worker::Worker;
