//! systemd integration for `Type=notify` units: readiness, status, stopping,
//! and the watchdog. Every call is a no-op outside systemd (no NOTIFY_SOCKET),
//! so the same binary runs from a shell, a test or a unit.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd the worker is up: its queue and run store are open.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd a stop is in progress, so `systemctl status` shows it while
/// running playbooks drain.
pub fn stopping(status: &str) {
    notify(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// With `WatchdogSec=` set, pings the watchdog at half its interval from a
/// task on the async runtime. The pings stop if the runtime wedges (every
/// thread blocked, a deadlock), and systemd restarts the worker; a worker
/// that is merely waiting hours for a long playbook keeps pinging.
pub fn spawn_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else { return };
    let every = (interval / 2).max(Duration::from_millis(100));
    tokio::spawn(async move {
        loop {
            notify(&[NotifyState::Watchdog]);
            tokio::time::sleep(every).await;
        }
    });
}

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("sd_notify: {e}");
    }
}
