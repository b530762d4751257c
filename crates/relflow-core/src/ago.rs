//! "A duration ago" for `since` filters (`2h`, `3d`), without overflowing.

use chrono::{DateTime, Utc};

/// `now - duration`, or `None` when that is before the earliest time chrono
/// can hold (`since=99999999999d`): callers answer with a clear error
/// instead of panicking in the subtraction.
pub fn ago(duration: std::time::Duration) -> Option<DateTime<Utc>> {
    let duration = chrono::Duration::from_std(duration).ok()?;
    Utc::now().checked_sub_signed(duration)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_duration_past_the_calendar_is_none() {
        let day = 86_400;
        assert!(super::ago(Duration::from_secs(99_999_999_999 * day)).is_none());
        assert!(super::ago(Duration::from_secs(u64::MAX)).is_none());
        let hour_ago = super::ago(Duration::from_secs(3600)).unwrap();
        assert!(hour_ago < chrono::Utc::now());
    }
}
