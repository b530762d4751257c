//! fedmsg over ZeroMQ: a PUB socket sending `[topic, envelope]` frames,
//! every envelope signed with `[fedmsg.sign]` the way
//! `fedmsg.crypto.x509_ng.sign` does (relflow-fedmsg's `Signer`), so
//! `fedmsg.crypto.validate` and relflow's own fedmsg sources accept it.
//!
//! The envelope is fedmsg's: `topic`, `msg` (the event body), `msg_id` (the
//! event id), `timestamp`, `i` (a per-process counter), `username`, plus
//! `headers` (with the chain depth) and the signature fields.
//!
//! fedmsg is fire-and-forget: a subscriber that is not connected misses
//! what is sent meanwhile, and there is nothing to confirm, so an event is
//! sent once the socket has it. Only one process can bind the address: the
//! others on the host are not [`ready`](Destination::ready) and leave the
//! events to it (any of them takes over, within a few seconds, if it stops).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use relflow_fedmsg::{SignError, Signer};
use relflow_store::PendingEvent;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use zeromq::{PubSocket, Socket, SocketSend, ZmqMessage};

use crate::destination::{Destination, Published};
use crate::options::{FedmsgOptions, FEDMSG};

/// How often a process that could not bind the address tries again.
const REBIND_EVERY: Duration = Duration::from_secs(5);

/// Publishes to `[announce.fedmsg]`.
pub struct FedmsgDestination {
    bind: String,
    signer: Signer,
    socket: Mutex<PubState>,
    sent: AtomicU64,
}

struct PubState {
    pub_socket: Option<PubSocket>,
    /// When binding may be tried again after a failure.
    next_try: Option<Instant>,
    /// The address actually bound (the port, when `bind` said 0).
    bound: Option<String>,
}

impl FedmsgDestination {
    /// Loads the signing certificate and key; binding waits for the first use.
    pub fn new(options: &FedmsgOptions) -> Result<FedmsgDestination, SignError> {
        Ok(FedmsgDestination {
            bind: options.bind.clone(),
            signer: Signer::from_config(&options.sign)?,
            socket: Mutex::new(PubState { pub_socket: None, next_try: None, bound: None }),
            sent: AtomicU64::new(0),
        })
    }

    /// Where the socket listens, once it does.
    pub async fn bound(&self) -> Option<String> {
        self.socket.lock().await.bound.clone()
    }

    /// Binds unless bound, at most every [`REBIND_EVERY`]; whether it is.
    async fn bind(&self) -> bool {
        let mut s = self.socket.lock().await;
        if s.pub_socket.is_some() {
            return true;
        }
        if s.next_try.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let mut socket = PubSocket::new();
        // ZeroMQ's `*` (every address) is spelled 0.0.0.0 for the zeromq crate.
        let address = self.bind.replacen("tcp://*:", "tcp://0.0.0.0:", 1);
        match socket.bind(&address).await {
            Ok(endpoint) => {
                tracing::info!(bind = %endpoint, "announcing on fedmsg");
                s.bound = Some(endpoint.to_string());
                s.pub_socket = Some(socket);
                s.next_try = None;
                true
            }
            Err(e) => {
                if s.next_try.is_none() {
                    tracing::info!(
                        bind = %self.bind,
                        "cannot bind the fedmsg socket ({e}); another relflow process on this host probably \
                         publishes the fedmsg announcements, this one leaves them to it"
                    );
                }
                s.next_try = Some(Instant::now() + REBIND_EVERY);
                false
            }
        }
    }

    /// The signed envelope of `e`, as bytes.
    fn envelope(&self, e: &PendingEvent) -> Result<Vec<u8>, SignError> {
        let mut headers = e.headers.clone();
        headers.insert("sent-at".into(), Utc::now().to_rfc3339_opts(SecondsFormat::Secs, false).into());
        let envelope = json!({
            "topic": e.topic,
            "msg": e.body,
            "msg_id": e.id,
            "timestamp": e.created_at.timestamp(),
            "i": self.sent.fetch_add(1, Ordering::Relaxed) + 1,
            "username": "relflow",
            "headers": Value::Object(headers),
        });
        self.signer.sign_bytes(envelope.to_string().as_bytes())
    }
}

#[async_trait]
impl Destination for FedmsgDestination {
    fn name(&self) -> &'static str {
        FEDMSG
    }

    async fn ready(&self) -> bool {
        self.bind().await
    }

    async fn publish(&self, events: &[PendingEvent]) -> Published {
        let mut s = self.socket.lock().await;
        let Some(socket) = s.pub_socket.as_mut() else {
            return Published { sent: 0, error: Some("the fedmsg socket is not bound".into()) };
        };
        for (i, e) in events.iter().enumerate() {
            let envelope = match self.envelope(e) {
                Ok(bytes) => bytes,
                Err(err) => return Published { sent: i, error: Some(format!("cannot sign the envelope: {err}")) },
            };
            let mut frames = ZmqMessage::from(envelope);
            frames.prepend(&ZmqMessage::from(e.topic.clone()));
            if let Err(err) = socket.send(frames).await {
                s.pub_socket = None;
                return Published { sent: i, error: Some(format!("fedmsg socket: {err}")) };
            }
        }
        Published::all(events.len())
    }
}
