//! `[queue]`: where messages wait between the intake and the workers.
//!
//! Unset, the embedded SQLite queue in `data_dir`. With `url`, or with
//! `urls` (several addresses of one RabbitMQ cluster, tried in turn on
//! connect and on every reconnect), RabbitMQ quorum queues.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::AmqpTls;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// `amqp://...` for RabbitMQ. Unset (and no `urls`): the embedded SQLite
    /// queue in `data_dir`. Read it with [`QueueConfig::broker_urls`].
    pub url: Option<String>,
    /// RabbitMQ cluster: the addresses of its nodes, in the order they are
    /// tried. Instead of `url`, never with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// RabbitMQ: prepended to the names of the queues relflow declares
    /// (`relflow.work`, `relflow.dead`, `relflow.retry.<delay>`), so several
    /// relflow setups can share a vhost.
    pub prefix: String,
    /// Embedded queue: how long a claimed message stays hidden from other
    /// workers without a lease renewal; a crashed worker's message comes back
    /// after it. (RabbitMQ sees a dead worker's connection drop instead.)
    /// Default 60s; read it with [`QueueConfig::visibility_timeout`].
    #[serde(default, with = "humantime_serde::option")]
    pub visibility_timeout: Option<Duration>,
    /// RabbitMQ over `amqps://`: a CA bundle and a client certificate that
    /// logs in with SASL EXTERNAL, as `tls` of an AMQP `[[source]]`.
    pub tls: Option<AmqpTls>,
}

impl QueueConfig {
    /// The embedded queue's lease.
    pub fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout.unwrap_or(Duration::from_secs(60))
    }

    /// The RabbitMQ addresses to try, in order: `url` alone, or `urls`.
    /// Empty: the embedded queue. (Loading refuses both, and an empty
    /// `urls`, so the two keys never disagree.)
    pub fn broker_urls(&self) -> Vec<String> {
        match (&self.url, &self.urls) {
            (Some(url), _) => vec![url.clone()],
            (None, Some(urls)) => urls.clone(),
            (None, None) => Vec::new(),
        }
    }

    /// Whether the queue is RabbitMQ (not the embedded one).
    pub fn is_rabbitmq(&self) -> bool {
        !self.broker_urls().is_empty()
    }

    pub(super) fn validate(&mut self, base: &Path) -> Result<(), String> {
        match (&self.url, &self.urls) {
            (Some(_), Some(_)) => {
                return Err("[queue] url and [queue] urls are both set: use `url` for one broker address, \
                            or `urls` for a cluster's addresses"
                    .into())
            }
            (None, Some(urls)) if urls.is_empty() => {
                return Err("[queue] urls is empty: list the RabbitMQ nodes' amqp:// addresses, \
                            or leave both url and urls out for the embedded queue"
                    .into())
            }
            _ => {}
        }
        let urls = self.broker_urls();
        let Some(tls) = &mut self.tls else { return Ok(()) };
        if urls.is_empty() {
            return Err("[queue] tls needs [queue] url or urls (the embedded queue has no TLS)".into());
        }
        for url in &urls {
            tls.validate(url, base).map_err(|e| format!("[queue] {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(toml_text: &str) -> Result<QueueConfig, String> {
        let mut q: QueueConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        q.validate(Path::new("/etc/relflow")).map(|()| q)
    }

    #[test]
    fn url_or_urls_name_the_brokers() {
        assert_eq!(queue("").unwrap().broker_urls(), Vec::<String>::new());
        assert_eq!(queue("url = \"amqp://a\"").unwrap().broker_urls(), ["amqp://a"]);
        let q = queue("urls = [\"amqp://a:5672\", \"amqp://b:5672\"]").unwrap();
        assert_eq!(q.broker_urls(), ["amqp://a:5672", "amqp://b:5672"]);
        assert!(q.is_rabbitmq());
    }

    #[test]
    fn both_or_an_empty_list_are_refused() {
        let err = queue("url = \"amqp://a\"\nurls = [\"amqp://b\"]").unwrap_err();
        assert!(err.contains("[queue] url and [queue] urls are both set"), "{err}");
        let err = queue("urls = []").unwrap_err();
        assert!(err.contains("[queue] urls is empty"), "{err}");
    }

    #[test]
    fn tls_applies_to_every_address() {
        let err = queue("urls = [\"amqps://a\", \"amqp://b\"]\ntls = { ca_cert = \"ca.pem\" }").unwrap_err();
        assert!(err.contains("not amqps://"), "{err}");
        let q = queue("urls = [\"amqps://a\", \"amqps://b\"]\ntls = { ca_cert = \"ca.pem\" }").unwrap();
        assert_eq!(q.tls.unwrap().ca_cert.unwrap(), Path::new("/etc/relflow/ca.pem"));
        let err = queue("tls = { ca_cert = \"ca.pem\" }").unwrap_err();
        assert!(err.contains("needs [queue] url or urls"), "{err}");
    }
}
