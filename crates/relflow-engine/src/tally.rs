//! What one worker settled since it started: `relflow worker --drain`
//! prints it, and exits non-zero when a message was dead-lettered.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::settle::Settle;

/// Messages settled by one worker, by how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Acked: every matching rule succeeded (or none matched).
    pub done: u64,
    /// Given up on, with a reason (`relflow dead-letters list`).
    pub dead_lettered: u64,
    /// Retries scheduled; a retried message is counted again when it settles.
    pub retries: u64,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let messages = self.done + self.dead_lettered;
        write!(f, "{messages} message(s): {} done, {} dead-lettered", self.done, self.dead_lettered)?;
        match self.retries {
            0 => Ok(()),
            n => write!(f, " ({n} retr{})", if n == 1 { "y" } else { "ies" }),
        }
    }
}

/// The live counters behind a [`Tally`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    done: AtomicU64,
    dead_lettered: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    pub(crate) fn count(&self, decision: &Settle) {
        let counter = match decision {
            Settle::Ack => &self.done,
            Settle::DeadLetter(_) => &self.dead_lettered,
            Settle::Retry { .. } => &self.retries,
            // Back on the queue for another worker: not settled here.
            Settle::Release => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tally(&self) -> Tally {
        Tally {
            done: self.done.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_decision_counts_once_and_releases_do_not_count() {
        let counters = Counters::default();
        for decision in [
            Settle::Ack,
            Settle::Ack,
            Settle::Retry { delay: Duration::from_secs(1), reason: "failed".into() },
            Settle::DeadLetter("failed twice".into()),
            Settle::Release,
        ] {
            counters.count(&decision);
        }
        let tally = counters.tally();
        assert_eq!(tally, Tally { done: 2, dead_lettered: 1, retries: 1 });
        assert_eq!(tally.to_string(), "3 message(s): 2 done, 1 dead-lettered (1 retry)");
        assert_eq!(Tally { done: 4, ..Tally::default() }.to_string(), "4 message(s): 4 done, 0 dead-lettered");
    }
}
