//! The per-run supervisor:
//! `<exe> __supervise <grace-ms> [--run-dir DIR] -- <program> <args...>`.
//!
//! Why a separate process: killing `ansible-playbook`'s process group is not
//! enough to end a run. Ansible forks workers, modules run under `/bin/sh -c`,
//! and a task may `setsid` or double-fork a daemon; all of those escape a
//! process-group kill and would outlive a timed-out run. The supervisor
//! closes every exit:
//!
//! * `PR_SET_CHILD_SUBREAPER`: every orphan of the run is re-parented to the
//!   supervisor instead of init, so "all processes of this run" is exactly
//!   "all descendants of the supervisor", found by walking `/proc/*/stat`.
//! * `PR_SET_PDEATHSIG(SIGTERM)`: if the worker dies (even by SIGKILL), the
//!   supervisor gets SIGTERM and tears the run down.
//! * On SIGTERM/SIGINT/SIGHUP, or when the program exits, it sends SIGTERM
//!   (and SIGCONT, for stopped processes) to every descendant, waits up to
//!   the grace period, SIGKILLs what is left, reaps everything, and exits with
//!   the program's exit code (128 + signal if it was killed).
//!
//! * With `--run-dir`, it holds a shared lock on the run's private dir for
//!   as long as it lives, so the next worker's sweep leaves the dir alone
//!   while the run may still be in it; and if the worker died under it, it
//!   removes the dir itself once the run is torn down (`rundir.rs`).
//!
//! The program's stdout and stderr both go to the supervisor's stdout, so the
//! runner reads one stream in the order it was written. The supervisor's own
//! diagnostics go to its stderr, prefixed with `relflow-supervise:`.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, getppid, Pid};

/// The argv[1] that selects supervisor mode in the relflow binary.
pub const SUPERVISE_ARG: &str = "__supervise";
/// Exit code and stderr marker when the program could not be started; the
/// runner turns these into `Outcome::SpawnFailed`.
pub(crate) const SPAWN_FAILED_EXIT: i32 = 127;
pub(crate) const SPAWN_FAILED_MARKER: &str = "relflow-supervise: cannot run";
/// Adopt mode (the warm pool): `__supervise <grace-ms> --pid <pid>`.
pub(crate) const ADOPT_ARG: &str = "--pid";
/// `__supervise <grace-ms> --run-dir <dir> ...`: the run's private dir.
pub(crate) const RUN_DIR_ARG: &str = "--run-dir";
/// How long SIGKILLed processes get to disappear before we give up (a process
/// stuck in uninterruptible sleep cannot be killed at all).
const KILL_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// Entry point of supervisor mode. Pass the whole `std::env::args_os()` (the
/// leading program name is skipped) or the arguments from `__supervise` on.
///
/// Must be called before the process starts any thread: it blocks signals in
/// the calling thread and waits for them synchronously.
pub fn supervise_main(args: impl Iterator<Item = OsString>) -> ! {
    let code = match parse_args(args) {
        Ok(plan) => supervise(plan),
        Err(usage) => {
            eprintln!("relflow-supervise: {usage}");
            eprintln!("usage: {SUPERVISE_ARG} <grace-ms> [{RUN_DIR_ARG} DIR] -- <program> [args...]");
            eprintln!(
                "       {SUPERVISE_ARG} <grace-ms> [{RUN_DIR_ARG} DIR] {ADOPT_ARG} <pid of a child of this process>"
            );
            2
        }
    };
    std::process::exit(code)
}

/// What the supervisor runs: a program it spawns, or (warm pool) a process
/// already forked by the process that exec'd the supervisor, i.e. its child.
#[derive(Debug, PartialEq)]
enum Target {
    Spawn(Vec<OsString>),
    Adopt(Pid),
}

/// What the command line asked for.
#[derive(Debug, PartialEq)]
struct Plan {
    grace: Duration,
    run_dir: Option<PathBuf>,
    target: Target,
}

fn parse_args(args: impl Iterator<Item = OsString>) -> Result<Plan, String> {
    let mut args: Vec<OsString> = args.collect();
    if args.first().is_some_and(|a| a != SUPERVISE_ARG) {
        args.remove(0); // argv[0]
    }
    let mut it = args.into_iter();
    if it.next().as_deref() != Some(SUPERVISE_ARG.as_ref()) {
        return Err(format!("first argument must be {SUPERVISE_ARG}"));
    }
    let grace = it
        .next()
        .and_then(|g| g.to_str().and_then(|s| s.parse::<u64>().ok()))
        .ok_or("grace must be a number of milliseconds")?;
    let grace = Duration::from_millis(grace);
    let mut run_dir = None;
    let mut next = it.next();
    if next.as_deref() == Some(RUN_DIR_ARG.as_ref()) {
        run_dir = Some(PathBuf::from(it.next().ok_or(format!("{RUN_DIR_ARG} takes a directory"))?));
        next = it.next();
    }
    match next.as_deref().and_then(|a| a.to_str()) {
        Some("--") => {}
        Some(ADOPT_ARG) => {
            let pid = it.next().and_then(|p| p.to_str().and_then(|s| s.parse::<i32>().ok()));
            return match (pid, it.next()) {
                (Some(pid), None) if pid > 0 => Ok(Plan { grace, run_dir, target: Target::Adopt(Pid::from_raw(pid)) }),
                _ => Err(format!("{ADOPT_ARG} takes one process id")),
            };
        }
        _ => return Err(format!("expected -- before the program, or {ADOPT_ARG} PID")),
    }
    let argv: Vec<OsString> = it.collect();
    if argv.is_empty() {
        return Err("no program given".into());
    }
    Ok(Plan { grace, run_dir, target: Target::Spawn(argv) })
}

fn supervise(Plan { grace, run_dir, target }: Plan) -> i32 {
    // Block the signals we care about first, so none is lost between here and
    // the sigwait loop; std resets the mask in the spawned program.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGCHLD] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("relflow-supervise: cannot block signals: {e}");
        return 125;
    }
    let parent = getppid();
    if let Err(e) = prctl::set_pdeathsig(Signal::SIGTERM) {
        eprintln!("relflow-supervise: PR_SET_PDEATHSIG: {e}");
        return 125;
    }
    if getppid() != parent {
        // The worker died before PDEATHSIG was armed: nothing to run for.
        return 128 + Signal::SIGTERM as i32;
    }
    if let Err(e) = prctl::set_child_subreaper(true) {
        eprintln!("relflow-supervise: PR_SET_CHILD_SUBREAPER: {e}");
        return 125;
    }
    // Held (open, close-on-exec) until this process exits.
    let _held = run_dir.as_deref().and_then(|dir| {
        crate::rundir::hold(dir)
            .map_err(|e| eprintln!("relflow-supervise: cannot lock run dir {}: {e}", dir.display()))
            .ok()
    });

    let child = match target {
        // The warm pool forked the playbook, then exec'd us in its place: it
        // is already our child, with the run's signals still blocked.
        Target::Adopt(pid) => pid,
        Target::Spawn(argv) => {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
                cmd.stderr(Stdio::from(fd));
            }
            match cmd.spawn() {
                Ok(c) => Pid::from_raw(c.id() as i32),
                Err(e) => {
                    eprintln!("{SPAWN_FAILED_MARKER} {}: {e}", argv[0].to_string_lossy());
                    return SPAWN_FAILED_EXIT;
                }
            }
        }
    };

    let mut status = None;
    // An adopted child may have exited before we were exec'd.
    reap(child, &mut status);
    while status.is_none() {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => reap(child, &mut status),
            Ok(_) => break, // SIGTERM / SIGINT / SIGHUP: tear down
            Err(e) => {
                eprintln!("relflow-supervise: sigwait: {e}");
                break;
            }
        }
    }
    teardown(grace, child, &mut status);
    if let Some(dir) = run_dir.filter(|_| getppid() != parent) {
        // The worker died under this run: nobody else will clean up after it.
        let _ = std::fs::remove_dir_all(dir);
    }
    match status {
        Some(WaitStatus::Exited(_, code)) => code,
        Some(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
        _ => 128 + Signal::SIGKILL as i32,
    }
}

/// Kills every descendant: SIGTERM (+SIGCONT) first, SIGKILL after `grace`.
/// Re-scans each round, since killed processes' orphans re-parent to us and
/// new processes may have been forked in the meantime.
fn teardown(grace: Duration, child: Pid, status: &mut Option<WaitStatus>) {
    let me = getpid();
    let deadline = Instant::now() + grace;
    let mut termed = HashSet::new();
    loop {
        reap(child, status);
        let alive = descendants(me);
        if alive.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        for pid in alive {
            if termed.insert(pid) {
                let _ = kill(pid, Signal::SIGTERM);
                let _ = kill(pid, Signal::SIGCONT);
            }
        }
        std::thread::sleep(POLL);
    }
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        reap(child, status);
        let alive = descendants(me);
        if alive.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!("relflow-supervise: {} process(es) survived SIGKILL: {alive:?}", alive.len());
            return;
        }
        for pid in alive {
            let _ = kill(pid, Signal::SIGKILL);
        }
        std::thread::sleep(POLL);
    }
}

/// Reaps every exited child (ours or adopted orphans), recording the status
/// of the supervised program.
fn reap(child: Pid, status: &mut Option<WaitStatus>) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(s) => {
                if s.pid() == Some(child) && matches!(s, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                    *status = Some(s);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// Live (non-zombie) descendants of `root`, from a snapshot of `/proc`.
pub(crate) fn descendants(root: Pid) -> Vec<Pid> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // exited while we looked
        };
        if let Some((state, ppid)) = parse_stat(&stat) {
            if state != 'Z' && state != 'X' {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root.as_raw()];
    while let Some(p) = stack.pop() {
        if let Some(kids) = children.get(&p) {
            for &k in kids {
                out.push(Pid::from_raw(k));
                stack.push(k);
            }
        }
    }
    out
}

/// `(state, ppid)` from `/proc/PID/stat`. The command name is in parentheses
/// and may itself contain spaces and parentheses, so split after the last `)`.
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        assert_eq!(parse_stat("42 (a) b (c)) S 7 42 42 0"), Some(('S', 7)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn parses_args_with_or_without_argv0() {
        let a = |v: &[&str]| parse_args(v.iter().map(OsString::from));
        let plan = |ms, run_dir: Option<&str>, target| Plan {
            grace: Duration::from_millis(ms),
            run_dir: run_dir.map(PathBuf::from),
            target,
        };
        let ok = a(&["relflow", "__supervise", "1500", "--", "prog", "-x"]);
        assert_eq!(ok, Ok(plan(1500, None, Target::Spawn(vec!["prog".into(), "-x".into()]))));
        assert_eq!(a(&["__supervise", "5", "--pid", "42"]), Ok(plan(5, None, Target::Adopt(Pid::from_raw(42)))));
        assert_eq!(
            a(&["__supervise", "5", "--run-dir", "/r/1", "--pid", "42"]),
            Ok(plan(5, Some("/r/1"), Target::Adopt(Pid::from_raw(42))))
        );
        assert_eq!(
            a(&["__supervise", "5", "--run-dir", "/r/1", "--", "prog"]),
            Ok(plan(5, Some("/r/1"), Target::Spawn(vec!["prog".into()])))
        );
        assert!(a(&["__supervise", "5", "--run-dir"]).is_err());
        assert!(a(&["__supervise", "5", "--pid", "x"]).is_err());
        assert!(a(&["__supervise", "5", "--pid", "42", "43"]).is_err());
        assert!(a(&["__supervise", "10", "--", "prog"]).is_ok());
        assert!(a(&["__supervise", "ten", "--", "prog"]).is_err());
        assert!(a(&["__supervise", "10", "--"]).is_err());
    }
}
