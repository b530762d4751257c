//! `[announce]`: relflow's own run events back onto the bus.
//!
//! With the section present, every run of a rule that does not say
//! `announce = false` writes `<topic_prefix>.run.started` and one end event
//! (`succeeded`, `failed`, `timed_out`, `cancelled`), and a message its rules
//! gave up on writes `run.dead_lettered`. They go to fedora-messaging (AMQP),
//! to signed fedmsg (ZeroMQ), or both, and straight onto the work queue when
//! a rule matches them (chaining). Without the section relflow announces
//! nothing.
//!
//! ```toml
//! [announce]
//! topic_prefix = "org.fedoraproject.prod.relflow"
//! max_chain_depth = 5           # a message deeper than this in a chain of runs is dead-lettered
//! max_pending = 100000          # per destination; past it the oldest unsent events are dropped
//! [announce.amqp]               # fedora-messaging style, to a topic exchange
//! url = "amqps://relflow@rabbitmq.example.org/%2Fpubsub"
//! exchange = "amq.topic"
//! tls = { ca_cert = "ca.pem", cert = "relflow.crt", key = "relflow.key" }
//! [announce.fedmsg]             # fedmsg over ZeroMQ, signed with [fedmsg.sign]
//! bind = "tcp://*:9941"
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ingest::{AmqpTls, FedmsgConfig};

/// `[announce]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnounceConfig {
    /// Event topics are `<topic_prefix>.run.<event>`.
    pub topic_prefix: String,
    /// A message that is more than this many runs down a chain (each run's
    /// events are one deeper than the message that started it) is
    /// dead-lettered instead of run, so a rule that triggers itself stops.
    pub max_chain_depth: u32,
    /// Unsent events kept per destination while it is unreachable; past
    /// this the oldest are dropped (counted, and logged).
    pub max_pending: u64,
    /// fedora-messaging: publish to an AMQP topic exchange.
    pub amqp: Option<AnnounceAmqp>,
    /// fedmsg: publish signed envelopes on a ZeroMQ PUB socket.
    pub fedmsg: Option<AnnounceFedmsg>,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        AnnounceConfig {
            topic_prefix: "relflow".into(),
            max_chain_depth: 5,
            max_pending: 100_000,
            amqp: None,
            fedmsg: None,
        }
    }
}

/// `[announce.amqp]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceAmqp {
    /// `amqp://` or `amqps://` broker URL (the password never shows in logs).
    pub url: String,
    /// The topic exchange events are published to.
    #[serde(default = "amq_topic")]
    pub exchange: String,
    /// `amqps://` only: CA bundle and client certificate (SASL EXTERNAL), as
    /// `tls` of an AMQP `[[source]]`.
    #[serde(default)]
    pub tls: Option<AmqpTls>,
}

/// `[announce.fedmsg]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceFedmsg {
    /// Where the PUB socket listens: `tcp://*:9941` (every address),
    /// `tcp://127.0.0.1:9941`, or `ipc:///run/relflow/fedmsg.sock`.
    pub bind: String,
}

fn amq_topic() -> String {
    "amq.topic".into()
}

impl AnnounceConfig {
    /// Checks the section and makes its paths relative to `base` (the
    /// config file's directory). fedmsg needs `[fedmsg.sign]` to sign with.
    pub fn validate(&mut self, base: &Path, fedmsg: Option<&FedmsgConfig>) -> Result<(), String> {
        crate::validate_topic(&format!("{}.run.started", self.topic_prefix))
            .map_err(|e| format!("[announce] topic_prefix {:?}: {e}", self.topic_prefix))?;
        if let Some(a) = &mut self.amqp {
            if !a.url.starts_with("amqp://") && !a.url.starts_with("amqps://") {
                return Err("[announce.amqp] url must start with amqp:// or amqps://".into());
            }
            if a.exchange.is_empty() {
                return Err("[announce.amqp] exchange is empty: use a topic exchange such as \"amq.topic\"".into());
            }
            if let Some(tls) = &mut a.tls {
                tls.validate(&a.url, base).map_err(|e| format!("[announce.amqp] {e}"))?;
            }
        }
        if let Some(f) = &self.fedmsg {
            if !f.bind.starts_with("tcp://") && !f.bind.starts_with("ipc://") {
                return Err(format!("[announce.fedmsg] bind {:?} must start with tcp:// or ipc://", f.bind));
            }
            if fedmsg.and_then(|c| c.sign.as_ref()).is_none() {
                return Err("[announce.fedmsg] needs [fedmsg.sign] (cert and key) to sign what it publishes".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::ingest::tests::load;

    #[test]
    fn announce_parses_with_defaults_and_relative_paths() {
        assert!(load("").unwrap().announce.is_none(), "no section: nothing is announced");
        let c = load("[announce]\n").unwrap();
        let a = c.announce.unwrap();
        assert_eq!((a.topic_prefix.as_str(), a.max_chain_depth, a.max_pending), ("relflow", 5, 100_000));
        let c = load(
            "[fedmsg]\nca_cert = \"ca.crt\"\n[fedmsg.sign]\ncert = \"r.crt\"\nkey = \"r.key\"\n\
             [announce]\ntopic_prefix = \"org.fedoraproject.prod.relflow\"\n\
             [announce.amqp]\nurl = \"amqps://broker/%2f\"\ntls = { ca_cert = \"ca.pem\" }\n\
             [announce.fedmsg]\nbind = \"tcp://*:9941\"\n",
        )
        .unwrap();
        let a = c.announce.unwrap();
        let amqp = a.amqp.unwrap();
        assert_eq!(amqp.exchange, "amq.topic");
        assert_eq!(amqp.tls.unwrap().ca_cert.as_deref(), Some(Path::new("/etc/relflow/ca.pem")));
        assert_eq!(a.fedmsg.unwrap().bind, "tcp://*:9941");
    }

    #[test]
    fn announce_mistakes_are_refused_with_what_to_do() {
        let cases = [
            ("[announce]\ntopic_prefix = \"a..b\"\n", "[announce] topic_prefix \"a..b\""),
            ("[announce.amqp]\nurl = \"http://x\"\n", "url must start with amqp://"),
            (
                "[announce.amqp]\nurl = \"amqp://x\"\ntls = {}\n",
                "[announce.amqp] tls is set but the url is not amqps://",
            ),
            ("[announce.fedmsg]\nbind = \"tcp://*:1\"\n", "needs [fedmsg.sign]"),
            ("[announce.fedmsg]\nbind = \"*:1\"\n", "must start with tcp:// or ipc://"),
            ("[announce]\nmax_depth = 3\n", "did you mean `max_chain_depth`"),
        ];
        for (text, want) in cases {
            let e = load(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn rules_announce_unless_they_opt_out_and_send_the_body_only_on_request() {
        let rules = "[[rule]]\nname = \"a\"\ntopic = \"x\"\nplaybook = \"a.yml\"\n\
                     [[rule]]\nname = \"b\"\ntopic = \"x\"\nplaybook = \"b.yml\"\nannounce = false\n\
                     [[rule]]\nname = \"c\"\ntopic = \"x\"\nplaybook = \"c.yml\"\nannounce_body = true\n";
        let c = load(rules).unwrap();
        let flags: Vec<(bool, bool)> = c.rules.iter().map(|r| (r.announce, r.announce_body)).collect();
        assert_eq!(flags, [(true, false), (false, false), (true, true)]);
    }
}
