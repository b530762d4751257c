//! How a delivery is handed back to the queue, decided from what happened to
//! it. A pure function, so the whole delivery table is one table test.
//!
//! | what happened                                        | [`Settle`]                         |
//! |------------------------------------------------------|------------------------------------|
//! | every matching rule succeeded, or none matched       | `Ack`                              |
//! | a rule already succeeded for this message earlier    | that rule counts as succeeded      |
//! | a run failed and its rule has retries left           | `Retry` after the backoff delay    |
//! | a run failed and no retries are left                 | `DeadLetter` with the reasons      |
//! | undecodable payload, missing playbook                | `DeadLetter` at once               |
//! | no host matched, or the playbook marked it permanent | `DeadLetter` at once, with why     |
//! | handed out more than `max_deliveries` times          | `DeadLetter` (it kills its workers)|
//! | its runs would be over `[announce] max_chain_depth`  | `DeadLetter` at once               |
//! | the worker is shutting down mid-run                  | `Release` (redelivered, no attempt)|
//! | an operator cancelled the run                        | that rule counts as done (no retry)|
//! | the rule has an approval gate: the run now waits     | that rule counts as done (ack)     |
//! | a gate's approval expired                            | `DeadLetter` ("approval expired")  |
//!
//! A worker that is killed settles nothing: the queue redelivers the message
//! (RabbitMQ when the connection drops, the embedded queue when the lease
//! runs out), and the "already succeeded" row keeps finished work from
//! running twice.

use std::time::Duration;

use relflow_core::config::WorkerConfig;

/// What the worker tells the queue about one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Done: remove it.
    Ack,
    /// Deliver again after `delay`, as the next attempt.
    Retry {
        /// How long to wait (the backoff for this attempt).
        delay: Duration,
        /// What failed, for the next attempt's logs and the dead letter.
        reason: String,
    },
    /// Give up, with the reason operators will read.
    DeadLetter(String),
    /// Not a failure (shutdown): make it claimable again now.
    Release,
}

/// What became of one matching rule for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOutcome {
    /// Ran and succeeded.
    Succeeded,
    /// Ran before and succeeded for this message: skipped.
    AlreadyDone,
    /// Failed; retrying may help.
    Failed(String),
    /// Cannot succeed by retrying (missing playbook, no host matched, a
    /// failure the playbook marked permanent, ...).
    Permanent(String),
    /// Stopped because the worker is shutting down, or ran but its end
    /// could not be recorded: back on the queue, no attempt counted.
    Interrupted,
    /// Stopped because an operator cancelled it (who, in words): done, not retried.
    Cancelled(String),
    /// Recorded as awaiting approval (the stored run keeps the message; an
    /// approval queues it again): done for this delivery.
    AwaitingApproval,
}

/// One matching rule's part in the decision.
#[derive(Debug, Clone)]
pub struct RuleVerdict<'a> {
    /// The rule's name.
    pub rule: &'a str,
    /// The rule's `retries`: attempts beyond the first.
    pub retries: u32,
    /// What became of it.
    pub outcome: RuleOutcome,
}

/// Everything the decision depends on.
#[derive(Debug, Clone)]
pub enum Handled<'a> {
    /// The payload is not a message (and never will be).
    Undecodable(String),
    /// Handed out this many times, over `max_deliveries`, without finishing.
    TooManyDeliveries(u32),
    /// No rule matched: a no-op.
    NoMatch,
    /// Its runs would be too deep in a chain of runs; why, in words.
    ChainTooDeep(String),
    /// Its approval gate expired; why, in words (starts "approval expired").
    ApprovalExpired(String),
    /// Its source has `validate = "reject"` and it fails its topic's
    /// schema; the schema's objections.
    SchemaInvalid(String),
    /// Attempt `attempt` ran these rules.
    Ran {
        /// 1 for the first attempt, +1 per retry.
        attempt: u32,
        /// Each matching rule's outcome.
        rules: Vec<RuleVerdict<'a>>,
    },
}

/// The decision table at the top of this module.
pub fn settle(handled: &Handled<'_>, worker: &WorkerConfig) -> Settle {
    let (attempt, rules) = match handled {
        Handled::Undecodable(e) => return Settle::DeadLetter(format!("undecodable message: {e}")),
        Handled::TooManyDeliveries(n) => {
            return Settle::DeadLetter(format!(
                "delivered {n} times without finishing (over worker.max_deliveries); a worker probably crashed \
                 on it each time"
            ))
        }
        Handled::NoMatch => return Settle::Ack,
        Handled::ChainTooDeep(why) | Handled::ApprovalExpired(why) => return Settle::DeadLetter(why.clone()),
        Handled::SchemaInvalid(why) => return Settle::DeadLetter(format!("fails its schema: {why}")),
        Handled::Ran { attempt, rules } => (*attempt, rules),
    };
    if rules.iter().any(|r| r.outcome == RuleOutcome::Interrupted) {
        return Settle::Release;
    }
    let mut permanent = Vec::new();
    let mut failed = Vec::new();
    let mut retry_left = false;
    for r in rules {
        match &r.outcome {
            RuleOutcome::Succeeded
            | RuleOutcome::AlreadyDone
            | RuleOutcome::Interrupted
            | RuleOutcome::Cancelled(_)
            | RuleOutcome::AwaitingApproval => {}
            RuleOutcome::Permanent(why) => permanent.push(format!("rule {:?}: {why}", r.rule)),
            RuleOutcome::Failed(why) => {
                retry_left |= attempt <= r.retries;
                failed.push(format!("rule {:?} (attempt {attempt}/{}): {why}", r.rule, r.retries + 1));
            }
        }
    }
    if !permanent.is_empty() {
        // Retrying cannot help the permanent ones, and would re-run the rest.
        permanent.extend(failed);
        return Settle::DeadLetter(permanent.join("; "));
    }
    if failed.is_empty() {
        return Settle::Ack;
    }
    let reason = failed.join("; ");
    if retry_left {
        Settle::Retry { delay: worker.backoff(attempt), reason }
    } else {
        Settle::DeadLetter(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> WorkerConfig {
        WorkerConfig {
            retry_delay: Duration::from_secs(10),
            retry_delay_max: Duration::from_secs(35),
            ..Default::default()
        }
    }

    fn ran(attempt: u32, rules: &[(&'static str, u32, RuleOutcome)]) -> Handled<'static> {
        let rules = rules.iter().map(|(rule, retries, o)| RuleVerdict { rule, retries: *retries, outcome: o.clone() });
        Handled::Ran { attempt, rules: rules.collect() }
    }

    fn failed(why: &str) -> RuleOutcome {
        RuleOutcome::Failed(why.into())
    }

    fn dead(reason: &str) -> Settle {
        Settle::DeadLetter(reason.into())
    }

    fn retry(secs: u64, reason: &str) -> Settle {
        Settle::Retry { delay: Duration::from_secs(secs), reason: reason.into() }
    }

    /// One row per line of the README's delivery table (and of this module's).
    #[test]
    fn the_delivery_table() {
        use RuleOutcome::*;
        let rows: Vec<(&str, Handled, Settle)> = vec![
            ("every matching rule succeeded", ran(1, &[("a", 0, Succeeded), ("b", 2, Succeeded)]), Settle::Ack),
            ("no rule matched", Handled::NoMatch, Settle::Ack),
            ("a rule already succeeded earlier: skipped, acked", ran(3, &[("a", 0, AlreadyDone)]), Settle::Ack),
            ("already done beside a fresh success", ran(2, &[("a", 1, AlreadyDone), ("b", 1, Succeeded)]), Settle::Ack),
            (
                "an operator cancelled the run: acked, not retried",
                ran(1, &[("a", 3, Cancelled("ops".into()))]),
                Settle::Ack,
            ),
            ("a gated rule now awaits approval: acked", ran(1, &[("a", 0, AwaitingApproval)]), Settle::Ack),
            (
                "an expired approval: dead letter, with why",
                Handled::ApprovalExpired("approval expired after 2s".into()),
                dead("approval expired after 2s"),
            ),
            (
                "failed with retries left: first backoff",
                ran(1, &[("a", 2, failed("exit 2"))]),
                retry(10, "rule \"a\" (attempt 1/3): exit 2"),
            ),
            (
                "failed with retries left: the delay doubles",
                ran(2, &[("a", 2, failed("exit 2"))]),
                retry(20, "rule \"a\" (attempt 2/3): exit 2"),
            ),
            (
                "the delay is capped at retry_delay_max",
                ran(3, &[("a", 5, failed("x"))]),
                retry(35, "rule \"a\" (attempt 3/6): x"),
            ),
            (
                "failed with no retries left",
                ran(3, &[("a", 2, failed("exit 2"))]),
                dead("rule \"a\" (attempt 3/3): exit 2"),
            ),
            (
                "failed with retries = 0 dead-letters at once",
                ran(1, &[("a", 0, failed("x"))]),
                dead("rule \"a\" (attempt 1/1): x"),
            ),
            (
                "one rule still has retries: the message is retried",
                ran(1, &[("a", 0, failed("x")), ("b", 1, failed("y"))]),
                retry(10, "rule \"a\" (attempt 1/1): x; rule \"b\" (attempt 1/2): y"),
            ),
            (
                "a failure beside a success is retried (the success is skipped next time)",
                ran(1, &[("a", 1, Succeeded), ("b", 1, failed("y"))]),
                retry(10, "rule \"b\" (attempt 1/2): y"),
            ),
            (
                "missing playbook: dead letter at once",
                ran(1, &[("a", 5, Permanent("playbook p.yml does not exist".into()))]),
                dead("rule \"a\": playbook p.yml does not exist"),
            ),
            (
                "no host matched: dead letter at once, whatever the retries",
                ran(1, &[("a", 5, Permanent("no hosts matched: play \"p\" (hosts: web)".into()))]),
                dead("rule \"a\": no hosts matched: play \"p\" (hosts: web)"),
            ),
            (
                "a failure the playbook marked permanent: dead letter at once, with its reason",
                ran(1, &[("a", 5, Permanent("flr: error: outside the allowed roots (marked permanent)".into()))]),
                dead("rule \"a\": flr: error: outside the allowed roots (marked permanent)"),
            ),
            (
                "a permanent failure wins over retries left, and names the others",
                ran(1, &[("a", 5, failed("x")), ("b", 5, Permanent("missing".into()))]),
                dead("rule \"b\": missing; rule \"a\" (attempt 1/6): x"),
            ),
            (
                "undecodable payload: dead letter at once",
                Handled::Undecodable("not JSON".into()),
                dead("undecodable message: not JSON"),
            ),
            (
                "poison message",
                Handled::TooManyDeliveries(11),
                dead(
                    "delivered 11 times without finishing (over worker.max_deliveries); a worker probably crashed \
                     on it each time",
                ),
            ),
            ("shutdown mid-run: released", ran(1, &[("a", 0, Interrupted)]), Settle::Release),
            (
                "too deep in a chain of runs: dead letter at once, with why",
                Handled::ChainTooDeep("chain depth 6 is over [announce] max_chain_depth (5)".into()),
                dead("chain depth 6 is over [announce] max_chain_depth (5)"),
            ),
            (
                "shutdown beats a failure in the same delivery (it was not a real attempt)",
                ran(1, &[("a", 0, failed("x")), ("b", 0, Interrupted)]),
                Settle::Release,
            ),
        ];
        let w = worker();
        for (row, handled, want) in rows {
            assert_eq!(settle(&handled, &w), want, "row: {row}");
        }
    }
}
