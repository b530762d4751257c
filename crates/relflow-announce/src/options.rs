//! What the announcer is told: its own options, never the whole config
//! (relflow-engine's `options.rs` maps `[announce]` to these).

use relflow_amqp::TlsOptions;
use relflow_fedmsg::SignConfig;

/// `[announce]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // `[announce]`'s keys, documented there
pub struct AnnounceOptions {
    /// Topics are `<topic_prefix>.run.<kind>`.
    pub topic_prefix: String,
    /// Messages whose runs would be deeper in a chain are dead-lettered.
    pub max_chain_depth: u32,
    /// Unsent events kept per destination; the oldest beyond are dropped.
    pub max_pending: u64,
    pub amqp: Option<AmqpOptions>,
    pub fedmsg: Option<FedmsgOptions>,
}

/// fedora-messaging: an AMQP topic exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // `[announce.amqp]`'s keys
pub struct AmqpOptions {
    pub url: String,
    pub exchange: String,
    pub tls: Option<TlsOptions>,
    /// Shown in the broker's connection list.
    pub connection_name: String,
}

/// fedmsg: a ZeroMQ PUB socket, every envelope signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FedmsgOptions {
    /// `tcp://*:9941`, `tcp://127.0.0.1:9941`, `ipc:///path`.
    pub bind: String,
    /// `[fedmsg.sign]`: the certificate and key to sign with.
    pub sign: SignConfig,
}

/// Destination names, as the outbox stores them.
pub const AMQP: &str = "amqp";
/// See [`AMQP`].
pub const FEDMSG: &str = "fedmsg";
/// The work queue (chaining).
pub const QUEUE: &str = "queue";
