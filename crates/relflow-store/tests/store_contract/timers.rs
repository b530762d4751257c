//! The timers part of the contract (last slot, claims, stale claims), on
//! both backends through `store_contract`'s harness.

use std::time::Duration;

use chrono::{DateTime, Utc};
use relflow_store::{RunStore, TimerAdvance, TimerSlot};

use super::{postgres, sqlite};

both!(one_worker_advances_a_timer_and_claims_its_slots, advancing);
both!(a_claim_not_sent_in_its_lease_is_claimed_again, stale);
both!(queued_slots_are_kept_30_days, pruned);

const HOUR: Duration = Duration::from_secs(3600);

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn slot(timer: &str, when: &str) -> TimerSlot {
    TimerSlot { timer: timer.into(), slot: when.into(), scheduled_at: at(when), fired_at: Utc::now(), manual: false }
}

fn advance(timer: &str, from: Option<&str>, to: &str, fire: &[&str], lease: Duration) -> TimerAdvance {
    TimerAdvance {
        timer: timer.into(),
        from: from.map(at),
        to: at(to),
        fire: fire.iter().map(|w| slot(timer, w)).collect(),
        claimant: "w1".into(),
        lease,
    }
}

async fn advancing(s: &dyn RunStore) {
    assert_eq!(s.timer_last_slot("nightly").await.unwrap(), None);
    let first = advance("nightly", None, "2026-12-01T05:00:00Z", &[], HOUR);
    assert_eq!(s.advance_timer(&first).await.unwrap(), Some(vec![]));
    assert_eq!(s.advance_timer(&first).await.unwrap(), None, "a second first sight loses");
    assert_eq!(s.timer_last_slot("nightly").await.unwrap(), Some(at("2026-12-01T05:00:00Z")));
    let next =
        advance("nightly", Some("2026-12-01T05:00:00Z"), "2026-12-02T05:00:00Z", &["2026-12-02T05:00:00Z"], HOUR);
    let claimed = s.advance_timer(&next).await.unwrap().unwrap();
    assert_eq!(claimed.iter().map(|c| c.slot.as_str()).collect::<Vec<_>>(), ["2026-12-02T05:00:00Z"]);
    assert_eq!(s.advance_timer(&next).await.unwrap(), None, "the worker that read the old last slot loses");
    let states = s.timer_states().await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].last_slot, Some(at("2026-12-02T05:00:00Z")));
    assert_eq!(states[0].last_fire.as_ref().map(|f| f.slot.as_str()), Some("2026-12-02T05:00:00Z"));
    // An operator's fire is a slot of its own and does not move the schedule.
    let fire = TimerSlot { slot: "fire-1".into(), manual: true, ..slot("nightly", "2026-12-02T09:30:00Z") };
    s.claim_fire(&fire, "cli", HOUR).await.unwrap();
    let states = s.timer_states().await.unwrap();
    assert_eq!(states[0].last_slot, Some(at("2026-12-02T05:00:00Z")));
    assert_eq!(states[0].last_fire.as_ref().map(|f| (f.slot.as_str(), f.manual)), Some(("fire-1", true)));
    // A timer only an operator fired: known, with no scheduled slot yet.
    s.claim_fire(&TimerSlot { timer: "weekly".into(), ..fire }, "cli", HOUR).await.unwrap();
    let weekly = s.timer_states().await.unwrap().into_iter().find(|t| t.name == "weekly").unwrap();
    assert_eq!((weekly.last_slot, weekly.last_fire.map(|f| f.manual)), (None, Some(true)));
}

async fn stale(s: &dyn RunStore) {
    let first = advance("t", None, "2026-12-01T05:00:00Z", &[], HOUR);
    s.advance_timer(&first).await.unwrap().unwrap();
    let next = advance(
        "t",
        Some("2026-12-01T05:00:00Z"),
        "2026-12-01T05:02:00Z",
        &["2026-12-01T05:01:00Z", "2026-12-01T05:02:00Z"],
        Duration::from_millis(50),
    );
    let claimed = s.advance_timer(&next).await.unwrap().unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(s.claim_stale_slot("w2", HOUR).await.unwrap(), None, "within the lease");
    s.slot_sent("t", "2026-12-01T05:01:00Z").await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    // The claimant died before queueing the second: it comes back, once.
    let again = s.claim_stale_slot("w2", HOUR).await.unwrap().unwrap();
    let fired_ms = claimed[1].fired_at.timestamp_millis();
    assert_eq!((again.slot.as_str(), again.fired_at.timestamp_millis()), ("2026-12-01T05:02:00Z", fired_ms));
    assert_eq!(s.claim_stale_slot("w3", HOUR).await.unwrap(), None);
}

async fn pruned(s: &dyn RunStore) {
    let fired = |days: i64| Utc::now() - chrono::TimeDelta::days(days);
    for (name, days) in [("old", 31), ("recent", 29)] {
        let fire = TimerSlot {
            slot: "fire-1".into(),
            manual: true,
            fired_at: fired(days),
            ..slot(name, "2026-10-01T05:00:00Z")
        };
        s.claim_fire(&fire, "cli", HOUR).await.unwrap();
        s.slot_sent(name, "fire-1").await.unwrap();
        s.advance_timer(&advance(name, None, "2026-12-01T05:00:00Z", &[], HOUR)).await.unwrap().unwrap();
    }
    let states = s.timer_states().await.unwrap();
    let last_fire = |name: &str| states.iter().find(|t| t.name == name).unwrap().last_fire.clone();
    assert_eq!(last_fire("old"), None, "a slot queued 31 days ago is dropped when its timer advances");
    assert!(last_fire("recent").is_some(), "one queued 29 days ago is kept");
}
