//! Whether each source endpoint is connected right now, for `/readyz`,
//! `/metrics` and `relflow serve`'s log: a publisher or broker that is down
//! is retried with backoff and never holds up the other sources, so without
//! this it would only show as silence.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One endpoint of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// `fedmsg:<name>`, `amqp:<name>`.
    pub source: String,
    /// The endpoint or broker URL (passwords redacted).
    pub endpoint: String,
    pub up: bool,
    /// Why it is down (the last connection error), when it is.
    pub error: Option<String>,
    /// When it came up or went down.
    pub since: DateTime<Utc>,
}

/// Every endpoint's [`Link`], as the sources report them.
#[derive(Debug, Default)]
pub struct Links {
    by_endpoint: Mutex<BTreeMap<(String, String), Link>>,
}

impl Links {
    /// Records that `endpoint` of `source` is up (`Ok`) or down (`Err(why)`),
    /// and returns the link as recorded. `since` moves only when the state
    /// changes, so a source retrying every few seconds keeps the time it
    /// went down.
    pub fn set(&self, source: &str, endpoint: &str, state: Result<(), String>) -> Link {
        let up = state.is_ok();
        let mut links = self.by_endpoint.lock().unwrap_or_else(|e| e.into_inner());
        let key = (source.to_owned(), endpoint.to_owned());
        let since = match links.get(&key) {
            Some(old) if old.up == up => old.since,
            _ => Utc::now(),
        };
        let link = Link { source: key.0.clone(), endpoint: key.1.clone(), up, error: state.err(), since };
        links.insert(key, link.clone());
        link
    }

    /// Every endpoint reported so far, by source then endpoint.
    pub fn all(&self) -> Vec<Link> {
        self.by_endpoint.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_keeps_its_since_while_retrying_and_up_clears_the_error() {
        let links = Links::default();
        links.set("fedmsg:bus", "tcp://a:1", Err("refused".into()));
        let first = links.all()[0].since;
        links.set("fedmsg:bus", "tcp://a:1", Err("refused again".into()));
        let retried = &links.all()[0];
        assert_eq!((retried.up, retried.since, retried.error.as_deref()), (false, first, Some("refused again")));
        links.set("fedmsg:bus", "tcp://a:1", Ok(()));
        links.set("amqp:fm", "amqp://b", Ok(()));
        let all = links.all();
        assert_eq!(
            all.iter().map(|l| (l.source.as_str(), l.up)).collect::<Vec<_>>(),
            [("amqp:fm", true), ("fedmsg:bus", true)]
        );
        assert_eq!(all[1].error, None);
    }
}
