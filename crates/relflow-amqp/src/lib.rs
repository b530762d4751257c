//! RabbitMQ backend of relflow's work queue ([`WorkQueue`]), on `lapin`.
//!
//! See `README.md` next to this crate for the topology diagram, the
//! confirm-then-ack ordering and the `consumer_timeout` story. In short:
//!
//! * `<prefix>relflow.work`: durable quorum queue, the work queue. Workers
//!   consume it with manual acks and `basic.qos(prefetch)`.
//! * `<prefix>relflow.retry.<delay>`: one durable quorum queue per retry delay,
//!   with `x-message-ttl = delay` and at-least-once dead-lettering back to the
//!   work queue. Every message in such a queue has the same TTL, so the head of
//!   the queue is always the first to expire and a long delay can never hold
//!   back a short one (which is what goes wrong with per-message `expiration`
//!   on one shared delay queue).
//! * `<prefix>relflow.dead`: durable quorum queue of dead letters, each with
//!   `x-relflow-reason`, `x-relflow-attempt`, `x-relflow-dead-id` and
//!   `x-relflow-dead-at` headers.
//!
//! Every publish is persistent (`delivery_mode = 2`), `mandatory`, and waits
//! for its publisher confirm; a nack, a return (unroutable), a timeout or a
//! lost connection is retried on a fresh channel and, when the attempts run
//! out, returned as an error. Nothing is dropped silently.
//!
//! `retry`, `dead_letter` and `replay` publish the new copy (confirmed) and
//! only then ack the original: a crash in between leaves both copies, so the
//! worst case is a duplicate, never a loss.
//!
//! One module per concern: [`connect`] (TLS, SASL EXTERNAL; shared with the
//! bridge's AMQP source), [`AmqpQueueOptions`] in `options`, the connection
//! and the topology in `session`, confirmed publishing and `retry` in
//! `publish`, `claim` and settling in `consume`, the dead queue in
//! `dead_letters`, the `x-relflow-*` headers in `headers`, and the
//! [`WorkQueue`](relflow_queue::WorkQueue) methods that tie them together in
//! `queue`.

mod connect;
mod consume;
mod dead_letters;
mod headers;
mod options;
mod publish;
mod queue;
mod session;

pub use connect::{connect, ClientCert, ConnectError, TlsOptions};
pub use headers::{HEADER_ATTEMPT, HEADER_DEAD_AT, HEADER_DEAD_ID, HEADER_REASON, HEADER_REPLAYED_FROM};
pub use options::{delay_label, AmqpQueueOptions};
pub use queue::AmqpQueue;
