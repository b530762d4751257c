//! A test hook: `RELFLOW_FAILPOINT=<name>` makes the worker SIGKILL itself
//! when it reaches that point, so a test can crash it exactly between two
//! steps (`after-record`: the run's end and its event are committed, nothing
//! is published or settled yet). Unset, it costs one environment lookup.

pub(crate) fn hit(name: &str) {
    if std::env::var_os("RELFLOW_FAILPOINT").is_some_and(|v| v == name) {
        tracing::error!("RELFLOW_FAILPOINT={name}: killing this worker, as the test asked");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    }
}
