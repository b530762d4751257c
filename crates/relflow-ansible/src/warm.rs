//! The warm Ansible pool (`[ansible] mode = "warm"`).
//!
//! A trivial `ansible-playbook` spends most of its wall time importing Python
//! modules. The pool is a Python process (`ansible/relflow_warm.py`, embedded
//! and written to the work dir like the callback plugin) that imports ansible
//! once and forks a child per run; the child then runs exactly what the cold
//! runner would (same argv, vars file, environment, working directory, log
//! pipes) under the same Rust supervisor, adopted with `__supervise --pid`.
//!
//! Why it stays equivalent to a cold run:
//! * ansible reads its configuration at import time, so the pool is started
//!   with the run's allow-listed environment and working directory, and is
//!   restarted (the old one finishes its runs, then exits) when either
//!   differs, or when `ansible-playbook`, the ansible package or an
//!   `ansible.cfg` it could read changed on disk ([`Stamp`]).
//! * the pool itself never runs a playbook, so no child inherits state from
//!   another run; each child gets its environment replaced and every fd
//!   above 2 closed.
//! * the runner talks to the pool over one Unix-socket connection per run in
//!   the 0700 work dir; the log pipes are passed as fds (SCM_RIGHTS), never
//!   a path, and nothing from the message is in the request (the vars stay
//!   in the 0600 file the argv points at).
//! * the pool, not the runner, signals the run's supervisor, because it is
//!   the supervisor's parent and knows whether the pid was reaped (no pid
//!   reuse race). Closing the connection (a dropped run future) = SIGTERM.
//!
//! If the pool cannot start (not a Python `ansible-playbook`, import error),
//! the run goes cold and a warning says why: slower, never different.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, ChildStdin, Command};

/// The pool's source, written to the work dir by `Runner::new`.
pub(crate) const HELPER: &str = include_str!("../ansible/relflow_warm.py");
pub(crate) const HELPER_NAME: &str = "relflow_warm.py";
/// Importing ansible on a loaded 2-core machine can take seconds; this is
/// only a bound on a pool that hangs.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// What a pool was started for; a run that needs something else restarts it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub program: PathBuf,
    pub env: BTreeMap<OsString, OsString>,
    pub cwd: PathBuf,
}

use crate::site::Stamp;

struct Zygote {
    key: Key,
    stamp: Stamp,
    ansible_dir: PathBuf,
    socket: PathBuf,
    child: Child,
    /// Dropping it (EOF) retires the pool: it finishes its runs and exits.
    _stdin: ChildStdin,
}

/// One worker's pool; restarted lazily, shared by all its runs.
pub(crate) struct WarmPool {
    work_dir: PathBuf,
    zygote: tokio::sync::Mutex<Option<Zygote>>,
    started: AtomicU64,
}

impl std::fmt::Debug for WarmPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmPool").field("work_dir", &self.work_dir).finish_non_exhaustive()
    }
}

/// A run in the pool: its supervisor's pid and the connection that reports
/// its exit status.
pub(crate) struct WarmRun {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    ctl: OwnedWriteHalf,
}

pub(crate) struct Launched {
    pub run: WarmRun,
    pub stdout: tokio::net::unix::pipe::Receiver,
    pub stderr: tokio::net::unix::pipe::Receiver,
}

impl WarmPool {
    pub fn new(work_dir: PathBuf) -> Self {
        WarmPool { work_dir, zygote: tokio::sync::Mutex::new(None), started: AtomicU64::new(0) }
    }

    /// How many pools this runner has started (a restart adds one).
    pub fn generation(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Starts (or restarts) the pool if needed, then starts one run in it.
    /// `supervisor` is the argv prefix the pool appends the playbook's pid to.
    pub async fn launch(
        &self,
        key: &Key,
        argv: &[OsString],
        run_env: &BTreeMap<OsString, OsString>,
        supervisor: &[OsString],
    ) -> Result<Launched, String> {
        let socket = self.ensure(key).await?;
        let (log_r, log_w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let (err_r, err_w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let hex = |s: &OsStr| hex_encode(s.as_bytes());
        let req = serde_json::json!({
            "argv": argv.iter().map(|a| hex(a)).collect::<Vec<_>>(),
            "env": run_env.iter().map(|(k, v)| (hex(k), hex(v))).collect::<BTreeMap<_, _>>(),
            "cwd": hex(key.cwd.as_os_str()),
            "supervisor": supervisor.iter().map(|a| hex(a)).collect::<Vec<_>>(),
        });
        let mut req = req.to_string().into_bytes();
        req.push(b'\n');
        let mut stream = std::os::unix::net::UnixStream::connect(&socket)
            .map_err(|e| format!("cannot connect to the warm pool at {}: {e}", socket.display()))?;
        send_with_fds(&mut stream, &req, [OwnedFd::from(log_w), OwnedFd::from(err_w)])
            .map_err(|e| format!("cannot send the run to the warm pool: {e}"))?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let stream = tokio::net::UnixStream::from_std(stream).map_err(|e| e.to_string())?;
        let (r, ctl) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        match lines.next_line().await {
            Ok(Some(l)) if reply_field(&l, "pid").is_some() => {}
            other => return Err(format!("the warm pool did not start the run: {other:?}")),
        }
        let rx = |r: std::io::PipeReader| {
            tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(r)).map_err(|e| e.to_string())
        };
        Ok(Launched { run: WarmRun { lines, ctl }, stdout: rx(log_r)?, stderr: rx(err_r)? })
    }

    /// The pool's socket, after starting a pool if there is none, it died,
    /// or what it was started for changed.
    pub async fn ensure(&self, key: &Key) -> Result<PathBuf, String> {
        let mut slot = self.zygote.lock().await;
        if let Some(z) = slot.as_mut() {
            let alive = matches!(z.child.try_wait(), Ok(None));
            if alive && z.key == *key && z.stamp == stamp(key, &z.ansible_dir) {
                return Ok(z.socket.clone());
            }
            tracing::info!(alive, "restarting the warm ansible pool (its configuration or ansible changed)");
        }
        if let Some(old) = slot.take() {
            retire(old);
        }
        let z = self.start(key).await?;
        let socket = z.socket.clone();
        *slot = Some(z);
        Ok(socket)
    }

    async fn start(&self, key: &Key) -> Result<Zygote, String> {
        let interp = interpreter(&key.program, key.env.get(OsStr::new("PATH")))?;
        let n = self.started.fetch_add(1, Ordering::Relaxed);
        let socket = self.work_dir.join(format!("warm-{}-{n}.sock", std::process::id()));
        let mut cmd = Command::new(&interp[0]);
        cmd.args(&interp[1..])
            .arg(self.work_dir.join(HELPER_NAME))
            .arg(&socket)
            .arg(&key.program)
            .arg(std::process::id().to_string())
            .current_dir(&key.cwd)
            .env_clear()
            .envs(&key.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = crate::runner::spawn(cmd)
            .await
            .map_err(|e| format!("cannot start {}: {e}", interp[0].to_string_lossy()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("warm pool pipes missing".into());
        };
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
        let ansible_dir = match ready {
            Ok(Ok(Some(line))) if line.starts_with("ready ") => PathBuf::from(&line["ready ".len()..]),
            other => {
                let _ = child.start_kill();
                return Err(format!(
                    "the warm pool ({}) did not start ({other:?}); its Python error, if any, is in the \
                     worker's log above",
                    interp[0].to_string_lossy()
                ));
            }
        };
        let stamp = stamp(key, &ansible_dir);
        tracing::info!(pid = child.id(), ansible = %ansible_dir.display(), "warm ansible pool ready");
        Ok(Zygote { key: key.clone(), stamp, ansible_dir, socket, child, _stdin: stdin })
    }
}

/// Closes the pool's stdin (it finishes its runs and exits) and reaps it in
/// the background.
fn retire(z: Zygote) {
    let Zygote { mut child, _stdin, .. } = z;
    drop(_stdin);
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let _ = child.wait().await;
        });
    }
}

impl WarmRun {
    /// The supervisor's exit status, as the pool reaped it.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        loop {
            match self.lines.next_line().await? {
                Some(l) => {
                    if let Some(raw) = reply_field(&l, "status") {
                        return Ok(ExitStatus::from_raw(raw as i32));
                    }
                }
                None => return Err(std::io::Error::other("the warm pool went away during the run")),
            }
        }
    }

    /// Asks the pool to SIGTERM (or SIGKILL) the run's supervisor.
    pub async fn signal(&mut self, kill: bool) {
        let line: &[u8] = if kill { b"kill\n" } else { b"term\n" };
        let _ = self.ctl.write_all(line).await;
    }
}

fn reply_field(line: &str, name: &str) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(line).ok()?.get(name)?.as_i64()
}

/// Sends `data` with the fds attached to its first byte(s).
fn send_with_fds(stream: &mut std::os::unix::net::UnixStream, data: &[u8], fds: [OwnedFd; 2]) -> std::io::Result<()> {
    let raw = [fds[0].as_raw_fd(), fds[1].as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let sent = sendmsg::<UnixAddr>(stream.as_raw_fd(), &[IoSlice::new(data)], &cmsg, MsgFlags::empty(), None)?;
    stream.write_all(&data[sent..])
    // `fds` are closed here: the pool holds its own copies now, so the log
    // pipes reach EOF when the run's last process exits.
}

/// The interpreter line of `program` (ansible's entry-point script), split
/// as the kernel does: the program and at most one argument.
fn interpreter(program: &Path, path_env: Option<&OsString>) -> Result<Vec<OsString>, String> {
    let resolved = if program.components().count() > 1 {
        program.to_path_buf() // a missing file is reported by the read below
    } else {
        let path = path_env.map(|p| p.as_os_str()).unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
        crate::runner::find_program(program, path).ok_or_else(|| format!("{} not found on PATH", program.display()))?
    };
    let head = std::fs::read(&resolved).map_err(|e| format!("cannot read {}: {e}", resolved.display()))?;
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let not_python = || {
        format!(
            "warm mode needs {} to be ansible's Python entry-point script (a `#!...python` first line); \
             set [ansible] mode = \"cold\" to run it as it is",
            resolved.display()
        )
    };
    let rest = line.strip_prefix(b"#!").ok_or_else(not_python)?;
    let rest = std::str::from_utf8(rest).map_err(|_| not_python())?.trim();
    let (prog, arg) = match rest.split_once(char::is_whitespace) {
        Some((p, a)) => (p, Some(a.trim())),
        None => (rest, None),
    };
    if !prog.contains("python") && !arg.is_some_and(|a| a.contains("python")) {
        return Err(not_python());
    }
    let mut out = vec![OsString::from(prog)];
    out.extend(arg.filter(|a| !a.is_empty()).map(OsString::from));
    Ok(out)
}

/// The files whose change must restart the pool: the program, the ansible
/// package, and every `ansible.cfg` ansible could pick.
fn stamp(key: &Key, ansible_dir: &Path) -> Stamp {
    let mut files = vec![key.program.clone(), ansible_dir.to_path_buf(), ansible_dir.join("release.py")];
    files.extend(crate::site::config_files(&key.env, &key.cwd));
    crate::site::stat(&files)
}

fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_interpreter_line() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let venv = write("a", "#!/venv/bin/python3\nimport sys\n");
        assert_eq!(interpreter(&venv, None), Ok(vec!["/venv/bin/python3".into()]));
        let env = write("b", "#! /usr/bin/env  python3 \n");
        assert_eq!(interpreter(&env, None), Ok(vec!["/usr/bin/env".into(), "python3".into()]));
        let shell = write("c", "#!/bin/sh\nexec ansible-playbook \"$@\"\n");
        assert!(interpreter(&shell, None).unwrap_err().contains("mode = \"cold\""));
        let path = OsString::from(dir.path());
        assert_eq!(interpreter(Path::new("a"), Some(&path)), Ok(vec!["/venv/bin/python3".into()]));
        assert!(interpreter(Path::new("zz"), Some(&path)).unwrap_err().contains("not found on PATH"));
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        assert_eq!(hex_encode(b"\x00a\xff"), "0061ff");
    }
}
