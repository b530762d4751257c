//! Waiting for something that should happen, with a deadline that is only
//! there so a broken test fails instead of hanging. Tests never assert on
//! how long it took: pick a generous deadline.

use std::time::{Duration, Instant};

/// How often the condition is looked at again.
const EVERY: Duration = Duration::from_millis(100);

/// Polls `cond` until it is true; panics after `timeout` naming `what`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(timeout, what, || cond().then_some(()))
}

/// Polls `f` until it returns `Some`, and returns that; panics after
/// `timeout` naming `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(EVERY);
    }
}
