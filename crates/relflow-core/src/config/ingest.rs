//! Where messages come from: the `[[source]]` sections, the `[ingest]`
//! settings they share, and the `[fedmsg]` signature settings
//! ([`relflow_fedmsg::FedmsgConfig`]) that signed sources check against.
//!
//! Every source has a `type` and a unique `name`; the rest depends on the
//! type. `relflow bridge` (or `relflow serve`) runs them all.
//!
//! ```toml
//! [ingest]
//! dedupe_window = "24h"            # same message id within this window: queued once
//! listen = "127.0.0.1:8788"        # where `relflow bridge` serves webhooks
//!
//! [fedmsg]
//! ca_cert = "/etc/pki/fedmsg/ca.crt"
//! crl = "/etc/pki/fedmsg/crl.pem"
//!
//! [[source]]
//! type = "fedmsg"                  # ZeroMQ SUB
//! name = "fedora-hub"
//! endpoints = ["tcp://hub.fedoraproject.org:9940"]
//! topics = ["org.fedoraproject.prod.pungi."]   # prefixes; default: everything
//! require_signature = true         # default; needs [fedmsg]
//! validate = "warn"                # or "reject"; checks bodies against [schemas] (docs/schemas.md)
//!
//! [[source]]
//! type = "amqp"                    # fedora-messaging
//! name = "fedora-messaging"
//! url = "amqps://rabbitmq.fedoraproject.org/%2Fpublic_pubsub"
//! queue = "relflow-bridge"         # durable; survives bridge restarts
//! bindings = ["org.fedoraproject.prod.pungi.#"]
//! tls = { ca_cert = "cacert.pem", cert = "relflow.crt", key = "relflow.key" }
//!
//! [[source]]
//! type = "webhook"                 # POST /hooks/pagure
//! name = "pagure"
//! secret_file = "/etc/relflow/pagure.secret"
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use relflow_fedmsg::FedmsgConfig;

use super::schemas::Validate;
use serde::{Deserialize, Serialize};

/// `[ingest]`: settings shared by all sources.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// A message whose id was queued less than this long ago is dropped as a
    /// duplicate (two relays, a bridge restart, an upstream redelivery).
    #[serde(with = "humantime_serde")]
    pub dedupe_window: Duration,
    /// Address `relflow bridge` serves `POST /hooks/{name}` on when webhook
    /// sources are configured (`relflow serve` mounts them on its own port).
    pub listen: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig { dedupe_window: Duration::from_secs(24 * 3600), listen: "127.0.0.1:8788".into() }
    }
}

/// One `[[source]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// fedmsg: ZeroMQ SUB to publishers, two-frame `[topic, envelope]` messages.
    Fedmsg(FedmsgSource),
    /// fedora-messaging: a durable queue bound to a topic exchange.
    Amqp(AmqpSource),
    /// `POST /hooks/{name}` with an HMAC-SHA256 signature.
    Webhook(WebhookSource),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Fedmsg(s) => &s.name,
            SourceConfig::Amqp(s) => &s.name,
            SourceConfig::Webhook(s) => &s.name,
        }
    }

    /// `validate`: what a schema-invalid message from it gets.
    pub fn validate(&self) -> Validate {
        match self {
            SourceConfig::Fedmsg(s) => s.validate,
            SourceConfig::Amqp(s) => s.validate,
            SourceConfig::Webhook(s) => s.validate,
        }
    }

    /// The [`crate::Message::source`] of what it receives (`fedmsg:<name>`).
    pub fn label(&self) -> String {
        let kind = match self {
            SourceConfig::Fedmsg(_) => "fedmsg",
            SourceConfig::Amqp(_) => "amqp",
            SourceConfig::Webhook(_) => "webhook",
        };
        format!("{kind}:{}", self.name())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FedmsgSource {
    pub name: String,
    /// Publisher endpoints to connect to (`tcp://host:port`), each with its
    /// own connection and automatic reconnect.
    pub endpoints: Vec<String>,
    /// Topic prefixes to subscribe to. Empty: everything.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Refuse messages whose X.509 signature does not verify against `[fedmsg]`.
    #[serde(default = "yes")]
    pub require_signature: bool,
    /// Check each message against its topic's imported schema (`[schemas]`):
    /// `"warn"` logs and counts a failure, `"reject"` also dead-letters
    /// the message with the schema's error. Default `"off"`.
    #[serde(default)]
    pub validate: Validate,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSource {
    pub name: String,
    /// `amqp://user:pass@host:5672/vhost` or `amqps://...`.
    pub url: String,
    /// The topic exchange to bind to.
    #[serde(default = "amq_topic")]
    pub exchange: String,
    /// The durable queue relflow consumes; it keeps messages while the bridge
    /// is down. Default: `relflow-bridge.<name>`.
    #[serde(default)]
    pub queue: Option<String>,
    /// Binding keys (`*` one word, `#` any words). Default: `["#"]`.
    #[serde(default = "all_topics")]
    pub bindings: Vec<String>,
    /// Unacked messages the broker may hand over at once.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// TLS with a client certificate (SASL EXTERNAL), as Fedora's broker wants.
    #[serde(default)]
    pub tls: Option<AmqpTls>,
    /// Check each message against its topic's imported schema (`[schemas]`):
    /// `"warn"` logs and counts a failure, `"reject"` also dead-letters
    /// the message with the schema's error. Default `"off"`.
    #[serde(default)]
    pub validate: Validate,
}

impl AmqpSource {
    pub fn queue_name(&self) -> String {
        self.queue.clone().unwrap_or_else(|| format!("relflow-bridge.{}", self.name))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpTls {
    /// PEM CA bundle that signed the broker's certificate. Default: system roots.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate; with `key`, relflow logs in with SASL EXTERNAL.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM (PKCS#8) private key of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

impl AmqpTls {
    /// Checks it against the `url` it secures and makes its paths relative
    /// to `base` (the config file's directory). Used by `[queue]` and by
    /// `[[source]] type = "amqp"`.
    pub fn validate(&mut self, url: &str, base: &Path) -> Result<(), String> {
        if !url.starts_with("amqps://") {
            // lapin would quietly connect without TLS, sending the password in clear.
            return Err("tls is set but the url is not amqps://".into());
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err("tls.cert and tls.key go together (client certificate login)".into());
        }
        for p in [&mut self.ca_cert, &mut self.cert, &mut self.key].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSource {
    pub name: String,
    /// The shared HMAC secret, inline (prefer `secret_file`).
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
    /// A file holding the shared secret (surrounding white space ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Header with `sha256=<hex HMAC-SHA256 of the body>` (GitHub, Gitea, Forgejo style).
    #[serde(default = "signature_header")]
    pub signature_header: String,
    /// `json`: any JSON object, queued as the body on `topic`.
    /// `message`: a fedmsg envelope or fedora-messaging message, queued as is.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Topic for `format = "json"`. Default: `relflow.webhook.<name>`.
    #[serde(default)]
    pub topic: Option<String>,
    /// Header that carries a delivery id (e.g. `X-GitHub-Delivery`), used as
    /// the message id so redeliveries dedupe. Without it the id is derived
    /// from the content.
    #[serde(default)]
    pub id_header: Option<String>,
    /// Header with the send time in Unix seconds, for senders that sign it
    /// (e.g. `X-Signature-Timestamp`). With it, the HMAC covers
    /// `<timestamp>.<body>` and a request more than `timestamp_tolerance`
    /// away from now is refused (401), so a captured request cannot be
    /// replayed later.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    #[serde(default = "timestamp_tolerance", with = "humantime_serde")]
    pub timestamp_tolerance: Duration,
    /// Check each message against its topic's imported schema (`[schemas]`):
    /// `"warn"` logs and counts a failure, `"reject"` also dead-letters
    /// the message with the schema's error. Default `"off"`.
    #[serde(default)]
    pub validate: Validate,
}

fn timestamp_tolerance() -> Duration {
    Duration::from_secs(300)
}

impl WebhookSource {
    pub fn topic(&self) -> String {
        self.topic.clone().unwrap_or_else(|| format!("relflow.webhook.{}", self.name))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    Json,
    Message,
}

fn yes() -> bool {
    true
}
fn amq_topic() -> String {
    "amq.topic".into()
}
fn all_topics() -> Vec<String> {
    vec!["#".into()]
}
fn default_prefetch() -> u16 {
    50
}
fn signature_header() -> String {
    "X-Hub-Signature-256".into()
}

/// Checks the sources against each other and `[fedmsg]`, and makes their
/// file paths relative to `base` (the config file's directory).
pub fn validate(sources: &mut [SourceConfig], fedmsg: Option<&mut FedmsgConfig>, base: &Path) -> Result<(), String> {
    let have_fedmsg = fedmsg.is_some();
    if let Some(f) = fedmsg {
        f.resolve_paths(base);
    }
    let fix = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    let mut names = HashSet::new();
    for s in sources.iter_mut() {
        let name = s.name().to_owned();
        let at = |m: &str| format!("source {name:?}: {m}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(at(
                "name must be non-empty letters, digits, `-`, `_` or `.` (it is used in URLs and queue names)",
            ));
        }
        if !names.insert(name.clone()) {
            return Err(at("two sources have this name; names must be unique"));
        }
        match s {
            SourceConfig::Fedmsg(f) => {
                if f.endpoints.is_empty() {
                    return Err(at("endpoints is empty: list the publishers, e.g. [\"tcp://hub.example.org:9940\"]"));
                }
                if let Some(e) = f.endpoints.iter().find(|e| !e.starts_with("tcp://") && !e.starts_with("ipc://")) {
                    return Err(at(&format!("endpoint {e:?} must start with tcp:// or ipc://")));
                }
                if f.require_signature && !have_fedmsg {
                    return Err(at("require_signature is on but there is no [fedmsg] section with ca_cert \
                                   (add one, or set require_signature = false)"));
                }
            }
            SourceConfig::Amqp(a) => {
                if !a.url.starts_with("amqp://") && !a.url.starts_with("amqps://") {
                    return Err(at("url must start with amqp:// or amqps://"));
                }
                if a.bindings.is_empty() {
                    return Err(at("bindings is empty: nothing would reach the queue (use [\"#\"] for everything)"));
                }
                if a.prefetch == 0 {
                    return Err(at("prefetch must be at least 1"));
                }
                if let Some(t) = &mut a.tls {
                    t.validate(&a.url, base).map_err(|e| at(&e))?;
                }
            }
            SourceConfig::Webhook(w) => {
                match (&w.secret, &mut w.secret_file) {
                    (Some(_), None) => {}
                    (None, Some(p)) => fix(p),
                    _ => return Err(at("set exactly one of secret_file or secret (the HMAC-SHA256 shared secret)")),
                }
                if w.format == WebhookFormat::Message && w.topic.is_some() {
                    return Err(at("topic is only for format = \"json\"; a message brings its own topic"));
                }
                crate::validate_topic(&w.topic()).map_err(|e| at(&e.to_string()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use crate::config::SourceConfig;
    use crate::Config;

    pub(crate) fn load(text: &str) -> Result<Config, String> {
        Config::from_toml(Path::new("/etc/relflow/relflow.toml"), &format!("playbooks_dir = \"p\"\n{text}"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sources_parse_with_defaults_and_relative_paths() {
        let c = load(
            r#"
            [ingest]
            dedupe_window = "2h"
            [fedmsg]
            ca_cert = "pki/ca.crt"
            [[source]]
            type = "fedmsg"
            name = "hub"
            endpoints = ["tcp://127.0.0.1:9940"]
            [[source]]
            type = "amqp"
            name = "fm"
            url = "amqps://broker/%2Fpublic_pubsub"
            tls = { cert = "c.pem", key = "k.pem" }
            [[source]]
            type = "webhook"
            name = "forge"
            secret_file = "forge.secret"
            "#,
        )
        .unwrap();
        assert_eq!(c.ingest.dedupe_window.as_secs(), 7200);
        assert_eq!(c.fedmsg.as_ref().unwrap().ca_cert, Path::new("/etc/relflow/pki/ca.crt"));
        match &c.sources[..] {
            [SourceConfig::Fedmsg(f), SourceConfig::Amqp(a), SourceConfig::Webhook(w)] => {
                assert!(f.require_signature, "signatures are required unless turned off");
                assert_eq!(
                    (a.exchange.as_str(), a.queue_name(), a.bindings.clone()),
                    ("amq.topic", "relflow-bridge.fm".into(), vec!["#".to_string()])
                );
                assert_eq!(a.tls.as_ref().unwrap().cert.as_deref(), Some(Path::new("/etc/relflow/c.pem")));
                assert_eq!(w.topic(), "relflow.webhook.forge");
                assert_eq!(w.secret_file.as_deref(), Some(Path::new("/etc/relflow/forge.secret")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mistakes_are_refused_with_what_to_do() {
        let e = load("[[source]]\ntype = \"fedmsg\"\nname = \"hub\"\nendpoints = [\"tcp://h:1\"]\n").unwrap_err();
        assert!(e.contains("no [fedmsg] section"), "{e}");
        let e = load("[[source]]\ntype = \"webhook\"\nname = \"x\"\n").unwrap_err();
        assert!(e.contains("secret_file or secret"), "{e}");
        let e = load("[[source]]\ntype = \"amqp\"\nname = \"x\"\nurl = \"amqp://h\"\nbindngs = []\n").unwrap_err();
        assert!(e.contains("bindngs"), "{e}");
        let e = load("[[source]]\ntype = \"zmq\"\nname = \"x\"\n").unwrap_err();
        assert!(e.contains("zmq"), "{e}");
        let two = "[[source]]\ntype = \"webhook\"\nname = \"x\"\nsecret = \"s\"\n";
        let e = load(&format!("{two}{two}")).unwrap_err();
        assert!(e.contains("names must be unique"), "{e}");
    }

    #[test]
    fn queue_and_source_tls_resolve_paths_and_refuse_mistakes() {
        let c = load("[queue]\nurl = \"amqps://broker/%2f\"\ntls = { ca_cert = \"ca.pem\", cert = \"/pki/c.pem\", key = \"k.pem\" }\n")
            .unwrap();
        let tls = c.queue.tls.unwrap();
        assert_eq!(tls.ca_cert.as_deref(), Some(Path::new("/etc/relflow/ca.pem")));
        assert_eq!(tls.cert.as_deref(), Some(Path::new("/pki/c.pem")));
        assert_eq!(tls.key.as_deref(), Some(Path::new("/etc/relflow/k.pem")));
        let cases = [
            ("[queue]\nurl = \"amqps://b\"\ntls = { cert = \"c.pem\" }\n", "[queue] tls.cert and tls.key go together"),
            ("[queue]\nurl = \"amqp://b\"\ntls = {}\n", "[queue] tls is set but the url is not amqps://"),
            ("[queue]\ntls = {}\n", "[queue] tls needs [queue] url"),
            ("[queue]\nurl = \"amqps://b\"\ntls = { ca = \"x\" }\n", "unknown key `ca`"),
            (
                "[[source]]\ntype = \"amqp\"\nname = \"x\"\nurl = \"amqp://h\"\ntls = { ca_cert = \"ca.pem\" }\n",
                "source \"x\": tls is set but the url is not amqps://",
            ),
        ];
        for (text, want) in cases {
            let e = load(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
