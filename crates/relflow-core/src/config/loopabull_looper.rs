//! loopabull's looper settings, as a relflow `[[source]]`.
//!
//! loopabull's `rabbitmq` / `fedmsgrabbitmq` looper consumed a RabbitMQ
//! queue bound to a topic exchange; when its settings say where (at least
//! `rabbitmq.host`), they become the equivalent `[[source]] type = "amqp"`,
//! which `relflow bridge` (or `serve`) runs. Settings that are not complete,
//! and the `fedmsg` looper (it read its endpoints from `/etc/fedmsg.d`, not
//! from this file), stay a warning that says what to write instead.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_yaml::Value;

use super::ingest::{AmqpSource, AmqpTls, SourceConfig};

/// What a URL part may hold unescaped: RFC 3986's unreserved characters.
const URL_PART: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The name the translated source gets.
pub(crate) const SOURCE_NAME: &str = "loopabull";

/// What became of the looper settings.
pub(crate) enum Looper {
    /// No looper settings at all.
    None,
    /// Translated into this source.
    Source(Box<SourceConfig>),
    /// Not used, with a warning saying why and what to do.
    Unused(String),
}

/// `root` is the whole YAML document; `routing_keys` its top-level keys.
pub(crate) fn translate(root: &Value, routing_keys: &[String]) -> Looper {
    let looper = root.get("plugins").and_then(|p| p.get("looper"));
    let name = looper.and_then(|l| l.get("name")).or(root.get("plugin")).and_then(Value::as_str);
    let Some(name) = name.or(looper.map(|_| "?")) else { return Looper::None };
    let looper = looper.cloned().unwrap_or(Value::Null);
    match name {
        "rabbitmq" | "fedmsgrabbitmq" => match amqp_source(&looper, routing_keys) {
            Some(source) => Looper::Source(Box::new(SourceConfig::Amqp(source))),
            None => Looper::Unused(unused(name, &looper, "it has no `rabbitmq.host`")),
        },
        "fedmsg" => Looper::Unused(unused(
            name,
            &looper,
            "it read its endpoints from /etc/fedmsg.d, which relflow does not read; add a \
             `[[source]] type = \"fedmsg\"` with those `endpoints`",
        )),
        _ => Looper::Unused(unused(name, &looper, "relflow has no equivalent")),
    }
}

fn unused(name: &str, looper: &Value, why: &str) -> String {
    let settings: Vec<String> = looper
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.as_str())
        .filter(|k| *k != "name")
        .map(|k| format!("`{k}`"))
        .collect();
    let with = if settings.is_empty() { String::new() } else { format!(" (with {})", settings.join(", ")) };
    format!(
        "loopabull looper `{name}`{with} is not used ({why}): relflow takes messages from its own queue, fed by \
         `[[source]]` in a relflow.toml (`relflow import loopabull FILE.yml` writes one) or `relflow publish`"
    )
}

/// The looper's broker, exchange, bindings and queue as an AMQP source.
fn amqp_source(looper: &Value, routing_keys: &[String]) -> Option<AmqpSource> {
    let rabbit = looper.get("rabbitmq")?;
    let host = text(rabbit.get("host"))?;
    let tls = looper.get("tls").filter(|t| t.is_mapping());
    let port = text(rabbit.get("port")).map(|p| format!(":{p}")).unwrap_or_default();
    let vhost = text(rabbit.get("virtual_host")).unwrap_or_else(|| "/".into());
    let vhost = utf8_percent_encode(&vhost, URL_PART);
    // With TLS loopabull logged in by certificate (SASL EXTERNAL), so no
    // user goes in the URL; otherwise `credentials`, if any.
    let user = match (tls, looper.get("credentials")) {
        (None, Some(c)) => match (text(c.get("username")), text(c.get("password"))) {
            (Some(u), p) => {
                let enc = |s: &str| utf8_percent_encode(s, URL_PART).to_string();
                let pass = p.map(|p| format!(":{}", enc(&p))).unwrap_or_default();
                format!("{}{pass}@", enc(&u))
            }
            (None, _) => String::new(),
        },
        _ => String::new(),
    };
    let scheme = if tls.is_some() { "amqps" } else { "amqp" };
    let queue = looper.get("channel_queue");
    // loopabull's default queue was exclusive and auto-deleted (a throwaway
    // name); relflow's is durable, so only a durable one keeps its name.
    let durable = queue.and_then(|q| q.get("durable")).and_then(Value::as_bool).unwrap_or(false);
    let bindings = strings(looper.get("routing_keys"));
    let bindings = match bindings.is_empty() {
        false => bindings,
        true if routing_keys.is_empty() || routing_keys.first().is_some_and(|k| k == "all") => vec!["#".into()],
        true => routing_keys.to_vec(),
    };
    Some(AmqpSource {
        validate: Default::default(),
        name: SOURCE_NAME.into(),
        url: format!("{scheme}://{user}{host}{port}/{vhost}"),
        exchange: looper.get("exchange").and_then(|e| text(e.get("name"))).unwrap_or_else(|| "amq.topic".into()),
        queue: if durable { queue.and_then(|q| text(q.get("name"))) } else { None },
        bindings,
        prefetch: 1, // loopabull's basic_qos(prefetch_count=1)
        tls: tls.map(|t| AmqpTls {
            ca_cert: text(t.get("ca_cert")).map(Into::into),
            cert: text(t.get("certfile")).map(Into::into),
            key: text(t.get("keyfile")).map(Into::into),
        }),
    })
}

/// A scalar as text (YAML may give a port as a number).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence).into_iter().flatten().filter_map(|s| text(Some(s))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn looper(text: &str) -> Looper {
        let doc: Value = serde_yaml::from_str(text).unwrap();
        translate(&doc, &["a.b".into(), "c.d".into()])
    }

    fn source(text: &str) -> AmqpSource {
        match looper(text) {
            Looper::Source(s) => match *s {
                SourceConfig::Amqp(a) => a,
                other => panic!("{other:?}"),
            },
            _ => panic!("not translated"),
        }
    }

    #[test]
    fn a_complete_rabbitmq_looper_becomes_an_amqp_source() {
        // loopabull's own example config (examples/configs/fedmsg_rabbitmq_example.yml).
        let a = source(
            "plugins:\n  looper:\n    name: fedmsgrabbitmq\n    credentials: {username: fedora, password: null}\n    \
             tls: {ca_cert: /ca.pem, keyfile: /k.pem, certfile: /c.pem}\n    \
             rabbitmq: {host: rabbitmq.fedoraproject.org, virtual_host: /public_pubsub}\n    \
             routing_keys: [x.y]\n    exchange: {name: amq.topic}\n    \
             channel_queue: {name: 0000, durable: false, auto_delete: true, exclusive: true}\n",
        );
        assert_eq!(a.url, "amqps://rabbitmq.fedoraproject.org/%2Fpublic_pubsub");
        assert_eq!(
            (a.exchange.as_str(), a.bindings.as_slice(), a.queue.as_deref()),
            ("amq.topic", &["x.y".into()][..], None)
        );
        let tls = a.tls.unwrap();
        assert_eq!(
            (tls.ca_cert.unwrap(), tls.cert.unwrap(), tls.key.unwrap()),
            ("/ca.pem".into(), "/c.pem".into(), "/k.pem".into())
        );

        let a = source(
            "plugins:\n  looper:\n    name: rabbitmq\n    credentials: {username: u@x, password: p/w}\n    \
             rabbitmq: {host: localhost, port: 5672}\n    channel_queue: {name: keep, durable: true}\n",
        );
        assert_eq!(a.url, "amqp://u%40x:p%2Fw@localhost:5672/%2F");
        assert_eq!((a.queue.as_deref(), a.bindings.as_slice()), (Some("keep"), &["a.b".into(), "c.d".into()][..]));
    }

    #[test]
    fn incomplete_or_fedmsg_loopers_are_warnings() {
        let Looper::Unused(w) = looper("plugins:\n  looper: {name: fedmsgrabbitmq}\n") else { panic!() };
        assert!(w.contains("no `rabbitmq.host`") && w.contains("relflow import loopabull"), "{w}");
        let Looper::Unused(w) = looper("plugins:\n  looper: {name: fedmsg}\n") else { panic!() };
        assert!(w.contains("/etc/fedmsg.d"), "{w}");
        assert!(matches!(looper("routing_keys: [a]\n"), Looper::None));
    }
}
