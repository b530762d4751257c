//! fedmsg's `routing_policy`: which certificate CNs may sign which topics.
//!
//! Signature checks prove *who* signed; the routing policy says whether that
//! signer may speak on a topic (fedmsg: "signature validation is to
//! authentication as routing policy checks are to authorization"). Semantics
//! are fedmsg's `validate_policy` exactly: topics match exactly (no wildcards);
//! a listed topic admits only its listed CNs; an unlisted topic is admitted
//! unless `routing_nitpicky` is set.

use std::collections::BTreeMap;

/// Topic -> allowed signer CNs, plus the nitpicky switch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingPolicy {
    pub topics: BTreeMap<String, Vec<String>>,
    /// Reject topics that have no entry (fedmsg's `routing_nitpicky`).
    pub nitpicky: bool,
}

/// How the policy admitted a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutingDecision {
    /// The topic is listed and the signer is among its allowed CNs.
    Allowed,
    /// The topic has no entry and `routing_nitpicky` is off, so it passes
    /// (fedmsg logs a warning in this case; callers may too).
    Unlisted,
}

/// Why the policy refused a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("signer '{signer}' not allowed for topic '{topic}' by routing_policy (allowed: {allowed:?}); add it to routing_policy if it is legitimate")]
    SignerNotAllowed { signer: String, topic: String, allowed: Vec<String> },
    #[error("topic '{topic}' (signer '{signer}') has no routing_policy entry and routing_nitpicky is on; add the topic to routing_policy")]
    TopicNotListed { topic: String, signer: String },
}

impl RoutingPolicy {
    pub fn new(topics: BTreeMap<String, Vec<String>>, nitpicky: bool) -> Self {
        RoutingPolicy { topics, nitpicky }
    }

    /// Checks `signer` (the certificate CN) against `topic`. A message without
    /// a topic can never match an entry, as in fedmsg (`None in policy`).
    pub fn check(&self, topic: Option<&str>, signer: &str) -> Result<RoutingDecision, PolicyError> {
        match topic.and_then(|t| self.topics.get(t).map(|allowed| (t, allowed))) {
            Some((_, allowed)) if allowed.iter().any(|a| a == signer) => Ok(RoutingDecision::Allowed),
            Some((t, allowed)) => {
                Err(PolicyError::SignerNotAllowed { signer: signer.into(), topic: t.into(), allowed: allowed.clone() })
            }
            None if self.nitpicky => {
                Err(PolicyError::TopicNotListed { topic: topic.unwrap_or("<none>").into(), signer: signer.into() })
            }
            None => Ok(RoutingDecision::Unlisted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(nitpicky: bool) -> RoutingPolicy {
        let mut t = BTreeMap::new();
        t.insert(
            "org.fedoraproject.prod.buildsys.tag".to_string(),
            vec!["koji-koji01.phx2.fedoraproject.org".to_string()],
        );
        RoutingPolicy::new(t, nitpicky)
    }

    #[test]
    fn listed_topic_allows_only_listed_signers() {
        let p = policy(false);
        assert_eq!(
            p.check(Some("org.fedoraproject.prod.buildsys.tag"), "koji-koji01.phx2.fedoraproject.org"),
            Ok(RoutingDecision::Allowed)
        );
        let e = p.check(Some("org.fedoraproject.prod.buildsys.tag"), "evil").unwrap_err();
        assert!(
            e.to_string().contains("signer 'evil' not allowed for topic 'org.fedoraproject.prod.buildsys.tag'"),
            "{e}"
        );
    }

    #[test]
    fn unlisted_topic_depends_on_nitpicky() {
        assert_eq!(policy(false).check(Some("x.y"), "anyone"), Ok(RoutingDecision::Unlisted));
        assert_eq!(policy(false).check(None, "anyone"), Ok(RoutingDecision::Unlisted));
        assert!(matches!(policy(true).check(Some("x.y"), "anyone"), Err(PolicyError::TopicNotListed { .. })));
        assert!(matches!(policy(true).check(None, "anyone"), Err(PolicyError::TopicNotListed { .. })));
    }

    #[test]
    fn no_wildcards() {
        assert!(policy(true)
            .check(Some("org.fedoraproject.prod.buildsys.tag.extra"), "koji-koji01.phx2.fedoraproject.org")
            .is_err());
    }
}
