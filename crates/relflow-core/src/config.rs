//! `relflow.toml`: where playbooks live, how to run ansible, the worker's
//! limits, and the rules.
//!
//! Loading validates everything that can be checked without running
//! anything (patterns, conditions, playbook paths), so a broken config is
//! refused at start-up with a message that points at the problem, instead of
//! surfacing as dead letters later. Relative paths are relative to the config
//! file, so a config works the same from any working directory.
//!
//! ```toml
//! playbooks_dir = "playbooks"
//!
//! [ansible]
//! playbook_cmd = "../.venv/bin/ansible-playbook"
//! inventory = "localhost,"
//!
//! [[rule]]
//! name = "compose-finished"
//! topic = "org.fedoraproject.*.pungi.compose.status.change"
//! when = 'msg.status in ["FINISHED", "FINISHED_INCOMPLETE"]'
//! playbook = "compose_finished.yml"
//! retries = 2
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::condition::{Condition, ConditionError};
use crate::rules::{Expect, GroupSpec, Rule, RuleTest};
use crate::{PatternError, TopicPattern, DEFAULT_MAX_MESSAGE_BYTES};

pub mod announce;
pub mod compat;
pub use compat::CompatConfig;
mod errors;
pub(crate) mod loopabull_keys;
pub(crate) mod loopabull_looper;
pub use announce::AnnounceConfig;
pub mod backfill;
pub use backfill::BackfillConfig;
pub mod schemas;
pub use schemas::{SchemasConfig, Validate};
pub mod http;
pub use http::HttpConfig;
pub mod tokens;
pub use tokens::{NamedToken, Permission, Role};
pub mod ingest;
pub use ingest::{AmqpTls, FedmsgConfig, IngestConfig, SourceConfig};
pub mod gates;
pub mod queue;
pub use queue::QueueConfig;
pub mod stateful;
pub mod timer;
pub use gates::{Approval, RetentionConfig};
pub use timer::Timer;

/// A loaded, validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Absolute; every rule's playbook is inside it.
    pub playbooks_dir: PathBuf,
    /// Absolute; the embedded queue and run store live here.
    pub data_dir: PathBuf,
    pub max_message_bytes: usize,
    pub ansible: AnsibleConfig,
    pub worker: WorkerConfig,
    pub queue: QueueConfig,
    pub store: StoreConfig,
    /// `[http]`: `relflow serve`.
    pub http: HttpConfig,
    /// `[ingest]`: dedupe window and webhook address for `relflow bridge`.
    pub ingest: IngestConfig,
    /// `[fedmsg]`: CA, CRL and routing policy for fedmsg signatures.
    pub fedmsg: Option<FedmsgConfig>,
    /// `[[source]]`: where `relflow bridge` takes messages from.
    pub sources: Vec<SourceConfig>,
    /// `[check]`: the sample messages `relflow check` evaluates conditions on.
    pub check: CheckConfig,
    /// `[announce]`: run events back onto the bus; `None`: none are sent.
    pub announce: Option<AnnounceConfig>,
    /// `[compat]`: loopabull compatibility (on for a loopabull YAML config).
    pub compat: CompatConfig,
    /// `[backfill]`: Datagrepper, and when the bridge fetches by itself.
    pub backfill: Option<BackfillConfig>,
    /// `[schemas]`: the imported fedora-messaging schemas (paths resolved).
    pub schemas: SchemasConfig,
    /// `[retention]`: how long runs, logs and dead letters are kept.
    pub retention: RetentionConfig,
    pub rules: Vec<Rule>,
    /// `[[timer]]`: messages on a cron schedule.
    pub timers: Vec<Timer>,
    /// Things that load but deserve the operator's eye (`relflow check` prints them).
    pub warnings: Vec<String>,
    /// Settings of another tool's config put into relflow's terms (a
    /// loopabull looper as a `[[source]]`); `relflow check` prints them.
    pub translated: Vec<String>,
}

/// The venv `scripts/install.sh` makes beside the binary
/// (`PREFIX/bin/relflow` -> `PREFIX/lib/relflow/venv`) when there is one;
/// otherwise `ansible-playbook` on PATH, which is how a distribution's
/// ansible-core (Fedora's `/usr/bin/ansible-playbook`) is used.
pub fn default_playbook_cmd() -> PathBuf {
    let installed = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("lib/relflow/venv/bin/ansible-playbook")));
    match installed {
        Some(venv) if venv.is_file() => venv,
        _ => PathBuf::from("ansible-playbook"),
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnsibleConfig {
    /// The `ansible-playbook` to run (loopabull's `playbook_cmd`). A bare
    /// name is looked up on PATH; a path is relative to the config file.
    /// Unset: see [`default_playbook_cmd`].
    pub playbook_cmd: PathBuf,
    /// Passed as ANSIBLE_CONFIG (loopabull's `cfg_file_path`).
    pub config: Option<PathBuf>,
    /// Default `-i` for rules that name none. None: ansible's own default.
    /// A path is relative to the config file; a value with a comma is a
    /// host list (`"localhost,"`) and is passed as it is.
    pub inventory: Option<String>,
    /// Worker environment variables passed through to ansible, beyond the
    /// fixed allow-list (PATH, HOME, LANG, SSH_AUTH_SOCK, KRB5CCNAME).
    pub env: Vec<String>,
    /// Between SIGTERM and SIGKILL when a run times out.
    #[serde(with = "humantime_serde")]
    pub kill_grace: Duration,
    /// `warm` (default): runs are forked from a pre-started Python with
    /// ansible imported (same results, about half the start-up time; see
    /// crates/relflow-ansible), cold if it cannot start. `cold`: a fresh
    /// ansible-playbook per run.
    pub mode: AnsibleMode,
}

/// How the worker starts ansible-playbook (`[ansible] mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnsibleMode {
    Cold,
    /// The default: runs fork from a helper that imported ansible once;
    /// cold for good (logged once) if the helper cannot start.
    #[default]
    Warm,
}

impl Default for AnsibleConfig {
    fn default() -> Self {
        AnsibleConfig {
            playbook_cmd: default_playbook_cmd(),
            config: None,
            inventory: None,
            env: Vec::new(),
            kill_grace: Duration::from_secs(10),
            mode: AnsibleMode::Warm,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Playbook runs at once per worker process. Default: number of cores.
    pub concurrency: usize,
    /// Deliveries a worker holds at once (RabbitMQ prefetch; embedded queue
    /// leases). No-ops and cheap decisions are settled without waiting for
    /// a playbook slot, so this is sized for their throughput; raised to
    /// `concurrency` when smaller. Default 64.
    pub prefetch: usize,
    /// On SIGTERM, how long running playbooks may take to finish before
    /// they are stopped and their messages left for redelivery.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Deprecated alias of `[queue] visibility_timeout` (it was always a
    /// queue setting); moved there at load with a warning.
    #[serde(default, with = "humantime_serde::option", skip_serializing)]
    pub visibility_timeout: Option<Duration>,
    /// First retry delay; doubles each attempt up to `retry_delay_max`.
    #[serde(with = "humantime_serde")]
    pub retry_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_delay_max: Duration,
    /// A message handed out this many times without finishing (it kills
    /// every worker that takes it) is dead-lettered.
    pub max_deliveries: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            prefetch: 64,
            drain_timeout: Duration::from_secs(300),
            visibility_timeout: None,
            retry_delay: Duration::from_secs(10),
            retry_delay_max: Duration::from_secs(3600),
            max_deliveries: 10,
        }
    }
}

impl WorkerConfig {
    /// Deliveries held at once by a worker running `concurrency` playbooks:
    /// never fewer than it can run.
    pub fn prefetch_for(&self, concurrency: usize) -> usize {
        self.prefetch.max(concurrency).max(1)
    }

    /// Every distinct retry delay a rule allowing `max_retries` can ask for.
    pub fn retry_delays(&self, max_retries: u32) -> Vec<Duration> {
        let mut delays: Vec<Duration> = (1..=max_retries.min(64)).map(|a| self.backoff(a)).collect();
        delays.dedup();
        delays
    }

    /// Exponential backoff: `retry_delay * 2^(attempt-1)`, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.retry_delay.saturating_mul(factor).min(self.retry_delay_max)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://...` so all workers share one run history. Unset: SQLite
    /// in `data_dir`.
    pub url: Option<String>,
}

/// `[check]`: what `relflow check` evaluates each condition against, so a
/// condition that can never be true (a type mismatch, a key no message has)
/// is found before it silently never fires.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckConfig {
    /// Message files (fedmsg envelopes or fedora-messaging JSON), as glob
    /// patterns; relative ones are relative to the config file (resolved at
    /// load). Each is used for the rules whose topic it matches.
    pub samples: Vec<String>,
    /// Also use the real Fedora messages that ship with relflow, for the
    /// topics they cover. Default true.
    pub shipped_samples: bool,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig { samples: Vec::new(), shipped_samples: true }
    }
}

/// How a rule names its playbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaybookSpec {
    /// A fixed file under the playbooks dir.
    File(PathBuf),
    /// loopabull's `routing_keys: [all]`: the file is derived from each
    /// message's topic by a translator.
    FromTopic(crate::loopabull::Translator),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}\n  (pass --config FILE or set RELFLOW_CONFIG)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path} is not valid TOML:\n{message}")]
    Toml { path: PathBuf, message: String },
    #[error("config {path} is not a valid loopabull YAML config: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Why a rule's playbook cannot be used. A permanent failure: retrying will
/// not make the file appear, so the worker dead-letters at once.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlaybookError {
    #[error("playbook path {0:?} must be relative to playbooks_dir and must not contain `..`")]
    Escapes(String),
    #[error("playbook {0} does not exist")]
    Missing(PathBuf),
    #[error("playbook {path} resolves to {target}, outside playbooks_dir (symlink?)")]
    OutsideDir { path: PathBuf, target: PathBuf },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    playbooks_dir: PathBuf,
    data_dir: Option<PathBuf>,
    max_message_bytes: Option<usize>,
    #[serde(default)]
    ansible: AnsibleConfig,
    #[serde(default)]
    worker: WorkerConfig,
    #[serde(default)]
    queue: QueueConfig,
    #[serde(default)]
    store: StoreConfig,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default)]
    ingest: IngestConfig,
    fedmsg: Option<FedmsgConfig>,
    #[serde(default, rename = "source")]
    sources: Vec<SourceConfig>,
    #[serde(default)]
    check: CheckConfig,
    announce: Option<AnnounceConfig>,
    #[serde(default)]
    compat: CompatConfig,
    backfill: Option<BackfillConfig>,
    #[serde(default)]
    schemas: SchemasConfig,
    #[serde(default)]
    retention: RetentionConfig,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
    #[serde(default, rename = "timer")]
    timers: Vec<timer::RawTimer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    topic: String,
    when: Option<String>,
    playbook: PathBuf,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    timeout: Duration,
    #[serde(default)]
    retries: u32,
    inventory: Option<String>,
    limit: Option<String>,
    #[serde(default)]
    allow_no_hosts: bool,
    concurrency_group: Option<RawGroup>,
    #[serde(default = "yes")]
    announce: bool,
    #[serde(default)]
    announce_body: bool,
    coalesce: Option<stateful::RawCoalesce>,
    join: Option<stateful::RawJoin>,
    approval: Option<Approval>,
    #[serde(default)]
    test: Vec<RawTest>,
}

/// `[[rule.test]]`: a message this rule must (or must not) match.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    message: PathBuf,
    expect: Expect,
    #[serde(default)]
    vars: BTreeMap<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawGroup {
    Fixed(String),
    Expr { expr: String },
}

fn default_timeout() -> Duration {
    Duration::from_secs(3600)
}

/// Accepts a relative path made only of normal components: no root, no
/// `..`. Checked on the words alone, before the file system is asked, so
/// even a playbook that does not exist yet cannot point outside.
pub fn check_relative(path: &Path) -> Result<(), PlaybookError> {
    let ok = !path.as_os_str().is_empty()
        && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(())
    } else {
        Err(PlaybookError::Escapes(path.display().to_string()))
    }
}

impl Config {
    /// Loads `relflow.toml`, or a loopabull YAML config when the file ends in
    /// `.yml`/`.yaml`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        if Self::is_loopabull_yaml(path) {
            crate::loopabull::from_yaml(path, &text)
        } else {
            Self::from_toml(path, &text)
        }
    }

    /// A `.yml`/`.yaml` file is read as a loopabull config.
    pub fn is_loopabull_yaml(path: &Path) -> bool {
        matches!(path.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
    }

    /// Parses TOML text as if it had been read from `path`.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| errors::toml_error(path, text, &e))?;
        let invalid = |message: String| ConfigError::Invalid { path: path.into(), message };
        let mut config = Config::base(path, &raw.playbooks_dir, raw.data_dir.as_deref());
        config.ansible = raw.ansible;
        config.worker = raw.worker;
        config.queue = raw.queue;
        if let Some(old) = config.worker.visibility_timeout.take() {
            let ignored = config.queue.visibility_timeout.is_some();
            config.warnings.push(format!(
                "[worker] visibility_timeout is deprecated (the lease belongs to the queue): move it to \
                 [queue] visibility_timeout{}",
                if ignored { "; [queue] visibility_timeout is set, so this one is ignored" } else { "" }
            ));
            config.queue.visibility_timeout.get_or_insert(old);
        }
        config.queue.validate(&config_dir(path)).map_err(invalid)?;
        config.store = raw.store;
        config.http = raw.http;
        config.http.validate().map_err(invalid)?;
        config.ingest = raw.ingest;
        config.fedmsg = raw.fedmsg;
        config.sources = raw.sources;
        config.check = raw.check;
        let base = config_dir(path);
        for pattern in &mut config.check.samples {
            *pattern = base.join(&*pattern).to_string_lossy().into_owned();
        }
        ingest::validate(&mut config.sources, config.fedmsg.as_mut(), &config_dir(path)).map_err(invalid)?;
        config.announce = raw.announce;
        config.compat = raw.compat;
        if let Some(a) = &mut config.announce {
            a.validate(&config_dir(path), config.fedmsg.as_ref()).map_err(invalid)?;
        }
        if let Some(b) = &raw.backfill {
            b.validate().map_err(invalid)?;
            let fedmsg = config.sources.iter().any(|s| matches!(s, SourceConfig::Fedmsg(_)));
            config.warnings.extend(b.warnings(fedmsg, config.ingest.dedupe_window));
        }
        config.backfill = raw.backfill;
        config.schemas = raw.schemas;
        raw.retention.validate().map_err(invalid)?;
        config.retention = raw.retention;
        config.max_message_bytes = raw.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        if config.worker.concurrency == 0 {
            return Err(invalid("worker.concurrency must be at least 1".into()));
        }
        if config.worker.prefetch == 0 {
            return Err(invalid("worker.prefetch must be at least 1".into()));
        }
        let mut names = HashSet::new();
        for r in raw.rules {
            let at = |m: String| invalid(format!("rule {:?}: {m}", r.name));
            if !names.insert(r.name.clone()) {
                return Err(at("two rules have this name; names must be unique".into()));
            }
            let topic = TopicPattern::parse(&r.topic).map_err(|e: PatternError| at(e.to_string()))?;
            let when =
                r.when.as_deref().map(Condition::compile).transpose().map_err(|e: ConditionError| at(e.to_string()))?;
            check_relative(&r.playbook).map_err(|e| at(e.to_string()))?;
            let concurrency_group = match r.concurrency_group {
                None => None,
                Some(RawGroup::Fixed(name)) => Some(GroupSpec::Fixed(name)),
                Some(RawGroup::Expr { expr }) => Some(GroupSpec::Expr {
                    expr: Condition::compile(&expr).map_err(|e| at(format!("concurrency_group: {e}")))?,
                }),
            };
            if r.timeout.is_zero() {
                return Err(at("timeout must be more than 0s".into()));
            }
            if r.coalesce.is_some() && r.join.is_some() {
                return Err(at("a rule has either coalesce or join, not both".into()));
            }
            let coalesce = r.coalesce.map(stateful::RawCoalesce::validate).transpose().map_err(at)?;
            let join = r.join.map(stateful::RawJoin::validate).transpose().map_err(at)?;
            let approval = r.approval.map(Approval::validate).transpose().map_err(at)?;
            if approval.is_some() && (coalesce.is_some() || join.is_some()) {
                // A batch's message is not the one a gate would hold and queue again.
                return Err(at("approval cannot be combined with coalesce or join".into()));
            }
            let mut tests = Vec::new();
            for t in r.test {
                if t.expect == Expect::NoMatch && !t.vars.is_empty() {
                    return Err(at(format!(
                        "test {}: `vars` are what the playbook would get, so they need expect = \"match\"",
                        t.message.display()
                    )));
                }
                tests.push(RuleTest { message: base.join(t.message), expect: t.expect, vars: t.vars });
            }
            config.rules.push(Rule {
                name: r.name,
                topic,
                when,
                playbook: PlaybookSpec::File(r.playbook),
                timeout: r.timeout,
                retries: r.retries,
                inventory: r.inventory,
                limit: r.limit,
                allow_no_hosts: r.allow_no_hosts,
                concurrency_group,
                tests,
                announce: r.announce,
                announce_body: r.announce_body,
                coalesce,
                join,
                approval,
            });
        }
        config.timers = timer::validate_all(raw.timers).map_err(invalid)?;
        config.warnings.extend(timer::unmatched(&config.timers, &config.rules));
        if config.rules.is_empty() {
            config.warnings.push("no [[rule]] is defined: every message will be acked as a no-op".into());
        }
        config.resolve_paths();
        Ok(config)
    }

    /// A config with defaults and no rules, its directories resolved
    /// against the config file's directory.
    pub(crate) fn base(path: &Path, playbooks_dir: &Path, data_dir: Option<&Path>) -> Config {
        let base = config_dir(path);
        let data_dir = match (data_dir, std::env::var_os("RELFLOW_DATA_DIR")) {
            (Some(d), _) => base.join(d),
            (None, Some(env)) => PathBuf::from(env),
            (None, None) => base.join(".relflow"),
        };
        Config {
            path: path.to_path_buf(),
            playbooks_dir: base.join(playbooks_dir),
            data_dir,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            ansible: AnsibleConfig::default(),
            worker: WorkerConfig::default(),
            queue: QueueConfig::default(),
            store: StoreConfig::default(),
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
            fedmsg: None,
            sources: Vec::new(),
            check: CheckConfig::default(),
            announce: None,
            compat: CompatConfig::default(),
            backfill: None,
            schemas: SchemasConfig::default(),
            retention: RetentionConfig::default(),
            rules: Vec::new(),
            timers: Vec::new(),
            warnings: Vec::new(),
            translated: Vec::new(),
        }
    }

    /// Makes file paths in `[ansible]` and the rules' inventories relative
    /// to the config file. A bare command name (`ansible-playbook`) stays as
    /// is, for a PATH lookup.
    pub(crate) fn resolve_paths(&mut self) {
        let base = config_dir(&self.path);
        if self.ansible.playbook_cmd.components().count() > 1 {
            self.ansible.playbook_cmd = base.join(&self.ansible.playbook_cmd);
        }
        if let Some(cfg) = &self.ansible.config {
            self.ansible.config = Some(base.join(cfg));
        }
        self.schemas.resolve(&base, &self.ansible.playbook_cmd);
        let inventories =
            std::iter::once(&mut self.ansible.inventory).chain(self.rules.iter_mut().map(|r| &mut r.inventory));
        for inventory in inventories.flatten() {
            *inventory = resolve_inventory(&base, inventory);
        }
    }

    /// The playbook file `rule` runs for a message on `topic`, checked to
    /// exist and to stay inside `playbooks_dir` even through symlinks.
    pub fn playbook_path(&self, rule: &Rule, topic: &str) -> Result<PathBuf, PlaybookError> {
        let relative = match &rule.playbook {
            PlaybookSpec::File(p) => p.clone(),
            PlaybookSpec::FromTopic(t) => t.translate(topic),
        };
        self.playbook_file(&relative)
    }

    /// A playbook file named relative to `playbooks_dir` (a join's
    /// `on_timeout`), with the same checks as [`Config::playbook_path`].
    pub fn playbook_file(&self, relative: &Path) -> Result<PathBuf, PlaybookError> {
        check_relative(relative)?;
        let path = self.playbooks_dir.join(relative);
        let target = path.canonicalize().map_err(|_| PlaybookError::Missing(path.clone()))?;
        let root = self.playbooks_dir.canonicalize().map_err(|_| PlaybookError::Missing(self.playbooks_dir.clone()))?;
        if !target.starts_with(&root) {
            return Err(PlaybookError::OutsideDir { path, target });
        }
        Ok(target)
    }

    /// The SQLite file of the embedded queue and run store.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("relflow.sqlite3")
    }
}

/// An inventory path relative to `base`. ansible reads a value with a comma
/// as a host list (`localhost,`, `a.example.org,b.example.org`), not a file:
/// that stays as it is.
fn resolve_inventory(base: &Path, inventory: &str) -> String {
    if inventory.contains(',') {
        return inventory.to_owned();
    }
    base.join(inventory).display().to_string()
}

pub(crate) fn config_dir(path: &Path) -> PathBuf {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}
