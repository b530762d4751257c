//! When a `[[timer]]` is due: a 5-field cron schedule read in an IANA time
//! zone, and which of the slots missed while no worker ran are fired
//! (`catch_up`).
//!
//! Slots are instants (UTC); the schedule is read on the zone's wall clock,
//! so `0 5 * * *` in Europe/Prague is 05:00 local time all year round.
//! Wall-clock times that a DST change skips or repeats are croner's rules:
//! see the tests below for what they give.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::{Cron, Direction};
use serde::{Deserialize, Serialize};

/// Missed slots are counted up to this many: a minutely timer stopped for a
/// year must not cost 500 000 cron steps to report.
pub const MISSED_CAP: usize = 10_000;

/// A parsed `schedule` in its `timezone`.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

/// After downtime, which missed slots fire (`catch_up`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// None of them.
    Skip,
    /// The newest one only.
    #[default]
    Latest,
    /// Each one (the newest `max_catch_up`), oldest first.
    All,
}

impl CatchUp {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::Latest => "latest",
            CatchUp::All => "all",
        }
    }
}

/// The slots after the last one handled, up to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The newest of them (as many as asked for), oldest first.
    pub newest: Vec<DateTime<Utc>>,
    /// How many there are (at most [`MISSED_CAP`]).
    pub total: usize,
}

/// What a timer does now: fire these slots and remember `last` as handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub fire: Vec<DateTime<Utc>>,
    /// The newest due slot; `None`: nothing is due.
    pub last: Option<DateTime<Utc>>,
    /// Due slots that do not fire (passed over by `catch_up`).
    pub skipped: usize,
}

impl Schedule {
    /// Parses `schedule` (exactly 5 fields: minute hour day-of-month month
    /// day-of-week) and `timezone` (an IANA name such as `Europe/Prague`).
    pub fn parse(schedule: &str, timezone: &str) -> Result<Schedule, String> {
        let fields = schedule.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "schedule {schedule:?} has {fields} field(s); a cron schedule has 5: minute hour day-of-month month \
                 day-of-week (e.g. \"0 5 * * *\")"
            ));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser.parse(schedule).map_err(|e| format!("schedule {schedule:?} is not a valid cron: {e}"))?;
        let tz: Tz = timezone.parse().map_err(|_| {
            format!("timezone {timezone:?} is not an IANA time zone name (such as \"UTC\" or \"Europe/Prague\")")
        })?;
        Ok(Schedule { cron, tz })
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron.find_next_occurrence(&local, false).ok().map(|n| n.with_timezone(&Utc))
    }

    /// The slots in (`after`, `until`]: the newest `keep`, and how many.
    pub fn due(&self, after: DateTime<Utc>, until: DateTime<Utc>, keep: usize) -> Due {
        let mut newest = Vec::new();
        let mut total = 0;
        let slots = self.cron.iter_from(until.with_timezone(&self.tz), Direction::Backward);
        for slot in slots.map(|s| s.with_timezone(&Utc)).take_while(|s| *s > after).take(MISSED_CAP) {
            if newest.len() < keep {
                newest.push(slot);
            }
            total += 1;
        }
        newest.reverse();
        Due { newest, total }
    }

    /// What to fire at `now` when `last` is the newest slot handled.
    ///
    /// One due slot is the ordinary case (a worker was briefly away, or
    /// late by a poll) and always fires. More than one means the whole fleet
    /// was stopped for at least a slot: `catch_up` decides, and every slot
    /// due then, the newest included, counts as missed.
    pub fn plan(&self, last: DateTime<Utc>, now: DateTime<Utc>, catch_up: CatchUp, max_catch_up: usize) -> Plan {
        let due = self.due(last, now, max_catch_up.max(1));
        let Some(&newest) = due.newest.last() else { return Plan { fire: Vec::new(), last: None, skipped: 0 } };
        let fire = match catch_up {
            _ if due.total == 1 => vec![newest],
            CatchUp::Skip => Vec::new(),
            CatchUp::Latest => vec![newest],
            CatchUp::All => due.newest,
        };
        Plan { skipped: due.total - fire.len(), fire, last: Some(newest) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn times(v: &[DateTime<Utc>]) -> Vec<String> {
        v.iter().map(|t| t.to_rfc3339()).collect()
    }

    #[test]
    fn five_fields_and_a_real_zone_only() {
        assert!(Schedule::parse("0 5 * * *", "UTC").is_ok());
        let six = Schedule::parse("0 0 5 * * *", "UTC").unwrap_err();
        assert!(six.contains("has 6 field(s)"), "{six}");
        let bad = Schedule::parse("61 5 * * *", "UTC").unwrap_err();
        assert!(bad.contains("not a valid cron"), "{bad}");
        let zone = Schedule::parse("0 5 * * *", "Europe/Praha").unwrap_err();
        assert!(zone.contains("not an IANA time zone"), "{zone}");
    }

    #[test]
    fn the_schedule_is_read_on_the_zones_wall_clock() {
        let s = Schedule::parse("0 5 * * *", "Europe/Prague").unwrap();
        // Winter: CET (UTC+1); summer: CEST (UTC+2).
        assert_eq!(s.next_after(at("2026-01-10T12:00:00Z")), Some(at("2026-01-11T04:00:00Z")));
        assert_eq!(s.next_after(at("2026-07-10T12:00:00Z")), Some(at("2026-07-11T03:00:00Z")));
        // A slot is strictly after: at 04:00Z exactly, the next is tomorrow's.
        assert_eq!(s.next_after(at("2026-01-11T04:00:00Z")), Some(at("2026-01-12T04:00:00Z")));
    }

    #[test]
    fn across_dst_changes_a_daily_slot_fires_once_a_day() {
        let s = Schedule::parse("30 2 * * *", "Europe/Prague").unwrap();
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that night.
        let spring = s.due(at("2026-03-27T12:00:00Z"), at("2026-03-31T12:00:00Z"), 10);
        assert_eq!(spring.total, 4, "{:?}", times(&spring.newest));
        assert_eq!(spring.newest[0], at("2026-03-28T01:30:00Z"));
        // The skipped 02:30 fires when the clock jumps past it: 03:00 CEST.
        assert_eq!(spring.newest[1], at("2026-03-29T01:00:00Z"));
        assert_eq!(spring.newest[2], at("2026-03-30T00:30:00Z"), "back to 02:30 local, now CEST");
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice: one slot.
        let autumn = s.due(at("2026-10-23T12:00:00Z"), at("2026-10-27T12:00:00Z"), 10);
        assert_eq!(autumn.total, 4, "{:?}", times(&autumn.newest));
        assert_eq!(autumn.newest[0], at("2026-10-24T00:30:00Z"));
        assert_eq!(autumn.newest[3], at("2026-10-27T01:30:00Z"), "02:30 CET");
    }

    #[test]
    fn due_slots_are_after_the_last_and_up_to_now_inclusive() {
        let s = Schedule::parse("*/15 * * * *", "UTC").unwrap();
        let due = s.due(at("2026-12-01T10:00:00Z"), at("2026-12-01T10:45:00.500Z"), 2);
        assert_eq!(due.total, 3);
        assert_eq!(times(&due.newest), ["2026-12-01T10:30:00+00:00", "2026-12-01T10:45:00+00:00"]);
        assert_eq!(s.due(at("2026-12-01T10:45:00Z"), at("2026-12-01T10:59:59Z"), 2).total, 0);
    }

    #[test]
    fn catch_up_decides_only_when_more_than_one_slot_is_due() {
        let s = Schedule::parse("* * * * *", "UTC").unwrap();
        let last = at("2026-12-01T10:00:00Z");
        let now = at("2026-12-01T10:03:20Z");
        let plan = |c, max| s.plan(last, now, c, max);
        assert!(plan(CatchUp::Skip, 10).fire.is_empty());
        assert_eq!(plan(CatchUp::Skip, 10).skipped, 3);
        assert_eq!(times(&plan(CatchUp::Latest, 10).fire), ["2026-12-01T10:03:00+00:00"]);
        assert_eq!(plan(CatchUp::All, 10).fire.len(), 3);
        assert_eq!(times(&plan(CatchUp::All, 2).fire), ["2026-12-01T10:02:00+00:00", "2026-12-01T10:03:00+00:00"]);
        assert_eq!(plan(CatchUp::All, 2).skipped, 1);
        for c in [CatchUp::Skip, CatchUp::Latest, CatchUp::All] {
            assert_eq!(plan(c, 10).last, Some(at("2026-12-01T10:03:00Z")));
            // The ordinary case: one slot due fires whatever catch_up says.
            let one = s.plan(at("2026-12-01T10:02:00Z"), now, c, 10);
            assert_eq!(times(&one.fire), ["2026-12-01T10:03:00+00:00"]);
            assert_eq!(s.plan(at("2026-12-01T10:03:00Z"), now, c, 10), Plan { fire: vec![], last: None, skipped: 0 });
        }
    }
}
