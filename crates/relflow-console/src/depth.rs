//! The queue depth over time, for the page's chart: sampled every few
//! seconds so a burst shows, and kept for a day without keeping a day of
//! five-second samples (the page fetches the history every few seconds).

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use relflow_queue::QueueDepth;
use serde::Serialize;

/// How often the queue depth is sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Every sample of the last hour is kept...
const FINE: usize = 3600 / 5;
/// ...and one a minute for the day before it.
const COARSE_EVERY: usize = 60 / 5;
const COARSE: usize = 24 * 60;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct DepthSample {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub depth: QueueDepth,
}

/// The last hour at [`SAMPLE_EVERY`], and the day at one sample a minute.
#[derive(Debug, Default)]
pub(crate) struct DepthHistory {
    fine: VecDeque<DepthSample>,
    coarse: VecDeque<DepthSample>,
    taken: usize,
}

impl DepthHistory {
    pub(crate) fn record(&mut self, sample: DepthSample) {
        if self.taken.is_multiple_of(COARSE_EVERY) {
            push_bounded(&mut self.coarse, sample, COARSE);
        }
        self.taken += 1;
        push_bounded(&mut self.fine, sample, FINE);
    }

    /// Oldest first: the minute samples from before the last hour, then
    /// every sample of the last hour.
    pub(crate) fn samples(&self) -> Vec<DepthSample> {
        let fine_from = self.fine.front().map(|s| s.at);
        let older = self.coarse.iter().filter(|s| fine_from.is_some_and(|from| s.at < from));
        older.chain(self.fine.iter()).copied().collect()
    }
}

fn push_bounded(samples: &mut VecDeque<DepthSample>, sample: DepthSample, keep: usize) {
    if samples.len() >= keep {
        samples.pop_front();
    }
    samples.push_back(sample);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_hour_is_kept_whole_and_the_day_before_a_minute_apart() {
        let start = Utc::now();
        let mut history = DepthHistory::default();
        // 25 hours of samples, five seconds apart; `ready` counts them.
        let n = 25 * 3600 / 5;
        for i in 0..n {
            let at = start + chrono::Duration::seconds(5 * i as i64);
            history.record(DepthSample { at, depth: QueueDepth { ready: i as u64, ..QueueDepth::default() } });
        }
        let samples = history.samples();
        let ready: Vec<u64> = samples.iter().map(|s| s.depth.ready).collect();
        let (older, hour) = ready.split_at(ready.len() - FINE);
        assert_eq!(hour, ((n - FINE) as u64..n as u64).collect::<Vec<_>>(), "the last hour, every sample");
        assert!(older.windows(2).all(|w| w[1] - w[0] == COARSE_EVERY as u64), "a minute apart before it");
        assert!(older.len() < COARSE && *older.last().unwrap() < hour[0], "{} older", older.len());
        assert!(samples.windows(2).all(|w| w[0].at < w[1].at), "oldest first, no repeats");
    }
}
