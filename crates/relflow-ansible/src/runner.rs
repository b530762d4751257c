//! Runs one playbook: vars file, environment allow-list, supervisor, timeout
//! and cancellation, log capture, per-task results.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::events::{self, Events};
use crate::result::{verdict, Ending, Outcome, RunResult};
use crate::rundir::{self, RunDir};
use crate::site::{SiteConfig, SiteConfigs};
use crate::supervise::{RUN_DIR_ARG, SUPERVISE_ARG};
use crate::vars::ExtraVars;
use crate::warm::{self, WarmPool, WarmRun};

/// Worker environment variables a playbook may see (if set). Everything else
/// is dropped: a worker's environment holds broker passwords and tokens that a
/// playbook, or a module it runs, has no business reading.
pub const ENV_ALLOWED: &[&str] = &["PATH", "HOME", "SSH_AUTH_SOCK", "KRB5CCNAME", "LANG"];
pub(crate) const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Extra time the supervisor gets, beyond the grace period, to finish its
/// SIGKILL round and exit before the runner SIGKILLs it.
const SUPERVISOR_MARGIN: Duration = Duration::from_secs(5);
/// How long the log is still read after the supervisor exited.
const DRAIN: Duration = Duration::from_secs(2);
/// In-memory log cap; the tee file (`log_path`) gets everything.
const MAX_LOG: usize = 16 << 20;
const MAX_STDERR: usize = 64 << 10;

/// How the runner runs playbooks; one per worker.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The `ansible-playbook` program (e.g. `.venv/bin/ansible-playbook`, or
    /// loopabull's `playbook_cmd`).
    pub ansible_playbook: PathBuf,
    /// Exported as `ANSIBLE_CONFIG`.
    pub ansible_config: Option<PathBuf>,
    /// Further worker environment variables let through to the playbook.
    pub env_passthrough: Vec<String>,
    /// Private directory for the callback plugin and the per-run temp files
    /// (created 0700 if missing).
    pub work_dir: PathBuf,
    /// Time between SIGTERM and SIGKILL when a run is torn down.
    pub kill_grace: Duration,
    /// The program that understands `__supervise` (the relflow binary, or
    /// `relflow-supervise`).
    pub supervisor: PathBuf,
    /// Cold (a fresh `ansible-playbook` per run) or warm (forked from a
    /// pre-started Python that has ansible imported; see `warm.rs`).
    pub mode: RunnerMode,
}

/// How `ansible-playbook` is started; both give the same results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerMode {
    /// `ansible-playbook` exec'd for every run.
    #[default]
    Cold,
    /// Forked from a pool that imported ansible once (about half the
    /// latency of a trivial playbook); falls back to cold if it cannot start.
    Warm,
}

impl RunnerConfig {
    /// Defaults: no ANSIBLE_CONFIG, no passthrough, 10 s grace, and this very
    /// executable as the supervisor.
    pub fn new(ansible_playbook: impl Into<PathBuf>, work_dir: impl Into<PathBuf>) -> Self {
        RunnerConfig {
            ansible_playbook: ansible_playbook.into(),
            ansible_config: None,
            env_passthrough: Vec::new(),
            work_dir: work_dir.into(),
            kill_grace: Duration::from_secs(10),
            supervisor: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("relflow")),
            mode: RunnerMode::Cold,
        }
    }
}

/// One playbook run.
#[derive(Debug, Clone)]
pub struct PlaybookRun {
    /// Absolute path, already validated by the configuration.
    pub playbook: PathBuf,
    /// `--inventory=` value (from configuration, never from the message).
    pub inventory: Option<String>,
    /// `--limit=` value (from configuration, never from the message).
    pub limit: Option<String>,
    pub timeout: Duration,
    pub vars: ExtraVars,
    /// Working directory (the playbooks dir).
    pub cwd: PathBuf,
    /// If set, the live log is also written here as it is produced.
    pub log_path: Option<PathBuf>,
    /// A play that matches no host is then fine; otherwise the run fails,
    /// permanently, with "no hosts matched" (the work would be lost).
    pub allow_no_hosts: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot prepare runner work dir {path}: {source}")]
    WorkDir { path: PathBuf, source: std::io::Error },
}

/// Runs playbooks; cheap to share (`&self`), many runs may be in flight.
#[derive(Debug)]
pub struct Runner {
    cfg: RunnerConfig,
    plugin_dir: PathBuf,
    /// Where each run gets its private dir (`rundir.rs`).
    runs_dir: PathBuf,
    warm: Option<WarmPool>,
    /// Set when the warm pool failed to start: every later run goes cold
    /// without trying again, and the reason is logged once.
    warm_failed: std::sync::atomic::AtomicBool,
    /// The site's callbacks, kept alongside relflow's (`site.rs`).
    site: SiteConfigs,
}

/// A started run, cold (the supervisor is our child) or warm (the pool's).
enum Proc {
    Cold(Child),
    Warm(WarmRun),
}

type Stream = Box<dyn AsyncRead + Unpin + Send>;

impl Runner {
    /// Creates the work dir (0700), writes the callback plugin into it, and
    /// removes the run dirs of runs whose worker and supervisor are gone.
    pub fn new(cfg: RunnerConfig) -> Result<Self, RunnerError> {
        let plugin_dir = cfg.work_dir.join("callback_plugins");
        let runs_dir = cfg.work_dir.join("runs");
        let err = |source| RunnerError::WorkDir { path: cfg.work_dir.clone(), source };
        create_private_dir(&cfg.work_dir).map_err(err)?;
        create_private_dir(&plugin_dir).map_err(err)?;
        create_private_dir(&runs_dir).map_err(err)?;
        let swept = rundir::sweep(&runs_dir);
        if swept > 0 {
            tracing::info!("removed {swept} run dir(s) (vars files, sockets) left by killed workers");
        }
        if !rundir::control_dir_fits(&runs_dir) {
            tracing::warn!(
                "the runner work dir {} is too long for SSH control sockets (Unix socket paths hold 107 \
                 bytes): SSH connection sharing will fail; use a shorter data_dir",
                cfg.work_dir.display()
            );
        }
        // Write-then-rename: several workers may share the work dir, and
        // ansible must never load a half-written plugin.
        let mut tmp = tempfile::NamedTempFile::new_in(&plugin_dir).map_err(err)?;
        tmp.write_all(events::CALLBACK_PLUGIN.as_bytes()).map_err(err)?;
        let target = plugin_dir.join(format!("{}.py", events::CALLBACK_NAME));
        tmp.persist(&target).map_err(|e| err(e.error))?;
        let warm = match cfg.mode {
            RunnerMode::Cold => None,
            RunnerMode::Warm => {
                let mut tmp = tempfile::NamedTempFile::new_in(&cfg.work_dir).map_err(err)?;
                tmp.write_all(warm::HELPER.as_bytes()).map_err(err)?;
                tmp.persist(cfg.work_dir.join(warm::HELPER_NAME)).map_err(|e| err(e.error))?;
                Some(WarmPool::new(cfg.work_dir.clone()))
            }
        };
        Ok(Runner { cfg, plugin_dir, runs_dir, warm, warm_failed: Default::default(), site: Default::default() })
    }

    /// Warm mode: starts the pool now for playbooks run from `cwd`, so the
    /// first run does not pay for it. Cold mode: nothing to do.
    pub async fn warm_up(&self, cwd: &Path) {
        if let Some(pool) = self.warm_pool() {
            let site = self.site_config(cwd).await;
            if let Err(e) = pool.ensure(&self.warm_key(cwd, &site)).await {
                self.warm_cannot_start(&e);
            }
        }
    }

    /// The site's effective ansible config for runs in `cwd` (cached).
    async fn site_config(&self, cwd: &Path) -> SiteConfig {
        self.site.get(&self.cfg.ansible_playbook, &self.base_env(), cwd).await
    }

    /// The warm pool, unless cold mode or the pool failed to start.
    fn warm_pool(&self) -> Option<&WarmPool> {
        self.warm.as_ref().filter(|_| !self.warm_failed.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Falls back to cold for good, saying why once.
    fn warm_cannot_start(&self, why: &str) {
        if !self.warm_failed.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "warm ansible pool cannot start: {why}; running every playbook cold from now on \
                 (set [ansible] mode = \"cold\" to skip the attempt)"
            );
        }
    }

    /// Warm mode: how many pools were started so far (each restart adds one).
    pub fn warm_generation(&self) -> Option<u64> {
        self.warm.as_ref().map(WarmPool::generation)
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.cfg
    }

    /// Runs the playbook to completion, timeout or cancellation. Never
    /// panics on bad input; every failure is a [`RunResult`].
    pub async fn run(&self, run: &PlaybookRun, cancel: CancellationToken) -> RunResult {
        if !run.playbook.is_file() {
            return RunResult::spawn_failed(format!("playbook not found: {}", run.playbook.display()));
        }
        if !run.cwd.is_dir() {
            return RunResult::spawn_failed(format!("playbooks dir not found: {}", run.cwd.display()));
        }
        // Everything the run writes here goes with `dir` when it is dropped,
        // i.e. at the end of this function whatever happened (or if the
        // future is dropped); the vars file goes as soon as ansible is done.
        let dir = match RunDir::create(&self.runs_dir) {
            Ok(d) => d,
            Err(e) => return RunResult::spawn_failed(format!("cannot create the run dir: {e}")),
        };
        let files = dir.write_vars(&run.vars.to_unsafe_yaml()).and_then(|v| Ok((v, dir.create_events()?)));
        let (vars_file, events_file) = match files {
            Ok(f) => f,
            Err(e) => return RunResult::spawn_failed(format!("cannot write the vars file: {e}")),
        };

        let (mut child, stdout, stderr) = match self.launch(run, &dir, &vars_file).await {
            Ok(l) => l,
            Err(e) => return RunResult::spawn_failed(e),
        };
        // A warm run is torn down by the pool when its connection closes.
        let mut guard = TermOnDrop(match &child {
            Proc::Cold(c) => c.id(),
            Proc::Warm(_) => None,
        });
        let exited = CancellationToken::new();
        let tee = open_tee(run.log_path.as_deref()).await;
        let (log, err_out, (status, stopped)) = tokio::join!(
            read_stream(stdout, tee, exited.clone(), MAX_LOG),
            read_stream(stderr, Ok(None), exited.clone(), MAX_STDERR),
            async {
                let r = self.wait(&mut child, run.timeout, &cancel).await;
                exited.cancel();
                r
            },
        );
        guard.0 = None;
        dir.remove_vars();

        let events = events::parse(&std::fs::read_to_string(&events_file).unwrap_or_default());
        let mut log = String::from_utf8_lossy(&log).into_owned();
        let err_out = String::from_utf8_lossy(&err_out).into_owned();
        if !err_out.trim().is_empty() {
            if !log.is_empty() && !log.ends_with('\n') {
                log.push('\n');
            }
            log.push_str(&err_out);
        }
        let exit_code = status.and_then(|s| s.code());
        let (outcome, error, permanent) = verdict(&Ending {
            exit_code,
            stopped,
            timeout: run.timeout,
            supervisor_err: &err_out,
            log: &log,
            events: &events,
            limit: run.limit.as_deref(),
            allow_no_hosts: run.allow_no_hosts,
        });
        let Events { tasks, stats, .. } = events;
        RunResult { outcome, exit_code, log, tasks, stats, error, permanent }
    }

    /// Starts the run: in the warm pool if configured and it is up, else
    /// cold under a freshly spawned supervisor.
    async fn launch(&self, run: &PlaybookRun, dir: &RunDir, vars: &Path) -> Result<(Proc, Stream, Stream), String> {
        let site = self.site_config(&run.cwd).await;
        if let Some(pool) = self.warm_pool() {
            if let Err(e) = pool.ensure(&self.warm_key(&run.cwd, &site)).await {
                self.warm_cannot_start(&e);
            }
        }
        if let Some(pool) = self.warm_pool() {
            let mut supervisor = self.supervisor_argv(dir);
            supervisor.push(crate::supervise::ADOPT_ARG.into());
            let key = self.warm_key(&run.cwd, &site);
            let env = self.child_env(&site, Some(dir));
            match pool.launch(&key, &self.playbook_argv(run, vars), &env, &supervisor).await {
                Ok(l) => return Ok((Proc::Warm(l.run), Box::new(l.stdout), Box::new(l.stderr))),
                Err(e) => tracing::warn!("warm ansible pool: {e}; running this playbook cold"),
            }
        }
        let mut child = spawn(self.command(run, dir, vars, &site))
            .await
            .map_err(|e| format!("cannot start supervisor {}: {e}", self.cfg.supervisor.display()))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err("supervisor pipes missing".into());
        };
        Ok((Proc::Cold(child), Box::new(stdout), Box::new(stderr)))
    }

    /// What a warm pool is started for: the run's environment without the
    /// per-run events file, and its working directory (ansible reads both,
    /// and its config, at import time).
    fn warm_key(&self, cwd: &Path, site: &SiteConfig) -> warm::Key {
        let env = self.child_env(site, None);
        warm::Key { program: self.cfg.ansible_playbook.clone(), env, cwd: cwd.to_path_buf() }
    }

    /// `ansible-playbook` and its arguments. Nothing from the message is on
    /// it: the variables are in the vars file, referenced as `@PATH`.
    fn playbook_argv(&self, run: &PlaybookRun, vars: &Path) -> Vec<OsString> {
        let mut argv = vec![self.cfg.ansible_playbook.clone().into_os_string()];
        // `--opt=value` so a value starting with `-` cannot become an option.
        if let Some(inv) = &run.inventory {
            argv.push(format!("--inventory={inv}").into());
        }
        if let Some(limit) = &run.limit {
            argv.push(format!("--limit={limit}").into());
        }
        argv.push(concat_os(OsStr::new("--extra-vars=@"), vars.as_os_str()));
        argv.push("--".into());
        argv.push(run.playbook.clone().into_os_string());
        argv
    }

    /// `<supervisor> __supervise <grace> --run-dir <dir>`, the part both
    /// modes share.
    fn supervisor_argv(&self, dir: &RunDir) -> Vec<OsString> {
        vec![
            self.cfg.supervisor.clone().into_os_string(),
            SUPERVISE_ARG.into(),
            self.cfg.kill_grace.as_millis().to_string().into(),
            RUN_DIR_ARG.into(),
            dir.path().into(),
        ]
    }

    /// The cold supervisor command line.
    fn command(&self, run: &PlaybookRun, dir: &RunDir, vars: &Path, site: &SiteConfig) -> Command {
        let argv = self.supervisor_argv(dir);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).arg("--").args(self.playbook_argv(run, vars));
        cmd.current_dir(&run.cwd)
            .env_clear()
            .envs(self.child_env(site, Some(dir)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group: a Ctrl-C on the worker's terminal is the
            // worker's to handle (drain or cancel), not delivered to runs.
            .process_group(0);
        cmd
    }

    /// The allow-listed environment and `ANSIBLE_CONFIG`: what the site's
    /// ansible config is read with.
    fn base_env(&self) -> BTreeMap<OsString, OsString> {
        let mut env = BTreeMap::new();
        let names = ENV_ALLOWED.iter().copied().chain(self.cfg.env_passthrough.iter().map(String::as_str));
        for name in names {
            if let Some(v) = std::env::var_os(name) {
                env.insert(OsString::from(name), v);
            }
        }
        env.entry("PATH".into()).or_insert_with(|| DEFAULT_PATH.into());
        if let Some(cfg) = &self.cfg.ansible_config {
            env.insert("ANSIBLE_CONFIG".into(), cfg.into());
        }
        env
    }

    /// [`Self::base_env`], plus relflow's callback after the `site`'s own,
    /// and, for a run (`dir`), where its per-run files go.
    fn child_env(&self, site: &SiteConfig, dir: Option<&RunDir>) -> BTreeMap<OsString, OsString> {
        let mut env = self.base_env();
        let mut enabled = site.callbacks.clone();
        if !enabled.iter().any(|c| c == events::CALLBACK_NAME) {
            enabled.push(events::CALLBACK_NAME.into());
        }
        let mut plugins: Vec<OsString> = site.callback_plugins.iter().map(OsString::from).collect();
        plugins.push(self.plugin_dir.clone().into_os_string());
        env.insert("ANSIBLE_CALLBACKS_ENABLED".into(), enabled.join(",").into());
        env.insert("ANSIBLE_CALLBACK_PLUGINS".into(), plugins.join(OsStr::new(":")));
        // The log is a pipe, so ansible does not colour it unless the site
        // forces colour; relflow stores that log and reads errors from it.
        if site.force_color {
            env.insert("ANSIBLE_FORCE_COLOR".into(), "false".into());
        }
        env.insert("PYTHONUNBUFFERED".into(), "1".into());
        if let Some(dir) = dir {
            env.insert(events::EVENTS_ENV.into(), dir.events().into());
            // One SSH master per run, never shared (rundir.rs says why).
            env.insert("ANSIBLE_SSH_CONTROL_PATH_DIR".into(), dir.control_dir().into());
            env.insert("ANSIBLE_PERSISTENT_CONTROL_PATH_DIR".into(), dir.control_dir().into());
            env.insert("ANSIBLE_LOCAL_TEMP".into(), dir.local_tmp().into());
        }
        env
    }

    /// Waits for the supervisor; on timeout or cancel asks it to tear the run
    /// down (SIGTERM), and SIGKILLs it only if it overstays grace + margin.
    /// Returns the exit status and, if the run was stopped, why.
    async fn wait(
        &self,
        child: &mut Proc,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> (Option<std::process::ExitStatus>, Option<Outcome>) {
        let why = tokio::select! {
            st = child.wait() => return (st.ok(), None),
            _ = tokio::time::sleep(timeout) => Outcome::TimedOut,
            _ = cancel.cancelled() => Outcome::Cancelled,
        };
        child.signal(false).await;
        let limit = self.cfg.kill_grace + SUPERVISOR_MARGIN;
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(st) => (st.ok(), Some(why)),
            Err(_) => {
                tracing::warn!("supervisor did not exit {limit:?} after SIGTERM; killing it");
                child.signal(true).await;
                (child.wait().await.ok(), Some(why))
            }
        }
    }
}

impl Proc {
    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self {
            Proc::Cold(c) => c.wait().await,
            Proc::Warm(w) => w.wait().await,
        }
    }

    /// SIGTERM (or SIGKILL) to the run's supervisor.
    async fn signal(&mut self, kill_it: bool) {
        match self {
            Proc::Cold(c) if kill_it => {
                let _ = c.start_kill();
            }
            // Not yet reaped, so the pid cannot have been reused.
            Proc::Cold(c) => {
                if let Some(pid) = c.id() {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                }
            }
            // The pool is the supervisor's parent: it signals it race-free.
            Proc::Warm(w) => w.signal(kill_it).await,
        }
    }
}

/// Resolves a program as exec would: a path as it is, a bare name on `path`
/// (a PATH-style list). `None` if no such file.
pub fn find_program(program: &Path, path: &OsStr) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    std::env::split_paths(path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// `name` (e.g. `ansible-config`) installed beside `ansible_playbook`
/// (resolved on `path` if it is a bare name): the same ansible install.
pub(crate) fn sibling_program(ansible_playbook: &Path, name: &str, path: &OsStr) -> Option<PathBuf> {
    let sibling = find_program(ansible_playbook, path)?.parent()?.join(name);
    sibling.is_file().then_some(sibling)
}

/// If a run's future is dropped mid-run, the supervisor still gets SIGTERM
/// and tears the run down.
struct TermOnDrop(Option<u32>);

impl Drop for TermOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
}

struct SpawnRequest {
    cmd: Command,
    handle: tokio::runtime::Handle,
    reply: tokio::sync::oneshot::Sender<std::io::Result<Child>>,
}

/// Spawns on one long-lived thread. `PR_SET_PDEATHSIG` fires when the
/// *thread* that forked the supervisor exits, not the process; spawning from
/// a runtime thread that later retires (e.g. a blocking-pool thread) would
/// kill healthy runs. This thread lives as long as the process.
pub(crate) async fn spawn(mut cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let started = std::thread::Builder::new().name("relflow-spawner".into()).spawn(move || {
            for mut req in rx {
                let _rt = req.handle.enter();
                let _ = req.reply.send(req.cmd.spawn());
            }
        });
        started.ok().map(|_| tx)
    });
    let Some(tx) = spawner else {
        tracing::warn!("no spawner thread; spawning on the current thread");
        return cmd.spawn();
    };
    let (reply, rx) = tokio::sync::oneshot::channel();
    let req = SpawnRequest { cmd, handle: tokio::runtime::Handle::current(), reply };
    if let Err(mpsc::SendError(mut req)) = tx.send(req) {
        return req.cmd.spawn();
    }
    rx.await.unwrap_or_else(|_| Err(std::io::Error::other("spawner thread gone")))
}

type Tee = Result<Option<tokio::fs::File>, String>;

async fn open_tee(path: Option<&Path>) -> Tee {
    let Some(path) = path else { return Ok(None) };
    match tokio::fs::File::create(path).await {
        Ok(f) => Ok(Some(f)),
        Err(e) => Err(format!("[relflow: cannot write live log {}: {e}]\n", path.display())),
    }
}

/// Reads a stream to EOF (or until `DRAIN` after the supervisor exited, in
/// case something that survived holds the pipe), teeing to `tee`.
async fn read_stream(mut r: impl AsyncRead + Unpin, tee: Tee, exited: CancellationToken, max: usize) -> Vec<u8> {
    let (mut tee, mut out) = match tee {
        Ok(t) => (t, Vec::new()),
        Err(note) => (None, note.into_bytes()),
    };
    let drain = async {
        exited.cancelled().await;
        tokio::time::sleep(DRAIN).await;
    };
    tokio::pin!(drain);
    let mut buf = vec![0u8; 8192];
    let mut truncated = false;
    loop {
        let n = tokio::select! {
            r = r.read(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
            _ = &mut drain => break,
        };
        if let Some(f) = tee.as_mut() {
            if f.write_all(&buf[..n]).await.and(f.flush().await).is_err() {
                tee = None;
            }
        }
        if out.len() + n <= max {
            out.extend_from_slice(&buf[..n]);
        } else if !truncated {
            truncated = true;
            out.extend_from_slice(b"\n[relflow: log truncated here; see the live log file for the rest]\n");
        }
    }
    out
}

fn concat_os(a: &OsStr, b: &OsStr) -> OsString {
    let mut s = a.to_os_string();
    s.push(b);
    s
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
