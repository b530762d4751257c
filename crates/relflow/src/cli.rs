//! The command line: every subcommand and flag, with the help text users see.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const QUICK_START: &str = "\
Quick start (the example config, embedded queue, no broker):
  relflow -c examples/relflow.toml check
  relflow -c examples/relflow.toml test
  relflow -c examples/relflow.toml publish examples/messages/compose-finished.json
  relflow -c examples/relflow.toml worker --drain
  relflow -c examples/relflow.toml runs list

Docs: README.md (config, delivery guarantees, what a playbook sees), docs/operations.md";

/// relflow: bus messages in, Ansible playbooks run, every run recorded.
///
/// Messages (fedmsg, fedora-messaging, webhooks, `relflow publish`) go on a
/// durable queue; workers match them against the rules in the config and run
/// the matching playbooks with the message as extra vars (`msg`, `topic`,
/// `msg_id`, `headers`, `sent_at`, `relflow`). A message is acked only after
/// its runs are recorded.
#[derive(Debug, Parser)]
#[command(name = "relflow", version, max_term_width = 100, after_help = QUICK_START)]
pub struct Cli {
    /// Config file: relflow TOML, or a loopabull YAML (.yml/.yaml).
    #[arg(long, short, global = true, env = "RELFLOW_CONFIG", default_value = "relflow.toml")]
    pub config: PathBuf,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "RELFLOW_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// More log detail (-v debug, -vv trace). RELFLOW_LOG=<filter> overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and list the rules; exits non-zero on any error.
    ///
    /// Also checks that every rule's playbook exists inside playbooks_dir,
    /// that ansible-playbook can be found, and evaluates every condition on
    /// the sample messages of its topic ([check] samples, the rule tests'
    /// messages, real Fedora messages shipped with relflow): type mismatches
    /// are errors, keys no sample has are warnings.
    Check(CheckArgs),

    /// Run the [[rule.test]] tables beside the rules and syntax-check every
    /// playbook; exits non-zero if any test fails.
    Test(JsonFlag),

    /// Put messages on the work queue.
    ///
    /// Either a topic and a JSON body (`relflow publish --topic a.b.c '{"k": 1}'`,
    /// body from stdin if omitted), or fedmsg envelope / fedora-messaging JSON
    /// files (`-` reads one message from stdin).
    Publish(PublishArgs),

    /// Show, per rule, whether each message matches and why not (topic,
    /// condition false, missing key, evaluation error), and the exact extra
    /// vars the playbooks would get. Runs nothing, queues nothing.
    DryRun {
        /// fedmsg envelope or fedora-messaging JSON files; `-` for stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only the per-rule verdicts, without the extra vars.
        #[arg(long)]
        rules_only: bool,
        #[command(flatten)]
        json: JsonFlag,
    },

    /// Take messages from the queue and run the matching playbooks.
    ///
    /// SIGTERM or Ctrl-C stops taking new messages and lets running
    /// playbooks finish (up to worker.drain_timeout); unfinished messages
    /// are left on the queue for another worker.
    Worker(WorkerArgs),

    /// Recorded playbook runs.
    #[command(subcommand)]
    Runs(RunsCommand),

    /// Messages relflow gave up on, with the reason.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),

    /// Queue depth and run counts at a glance.
    Status(JsonFlag),

    /// The fleet: every worker seen in the last day (on any host sharing the
    /// run store), alive, stopped or lost (no heartbeat for 20 s), with its
    /// concurrency, what it holds and the runs it is running now.
    Workers(JsonFlag),

    /// The [[timer]]s: when each fires next, when it fired last, and slots
    /// missed while no worker ran; fire one now.
    #[command(subcommand)]
    Timers(TimersCommand),

    /// The audit log: who replayed, purged, published, approved or denied
    /// what, when and from where (HTTP token name and peer address, or the
    /// local user for CLI commands), oldest first.
    #[command(subcommand)]
    Audit(AuditCommand),

    /// Delete runs, logs and dead letters older than [retention] says.
    ///
    /// `[retention] runs = "90d", logs = "30d", dead_letters = "30d"`, each
    /// optional (unset: kept forever). Runs still running or awaiting
    /// approval are never deleted. Deletes in batches, so workers keep
    /// working meanwhile; the worker and `relflow serve` do the same every
    /// 10 minutes by themselves. Prints what it deleted per kind.
    Prune {
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        json: JsonFlag,
    },

    /// Take messages from the configured [[source]]s (fedmsg over ZeroMQ,
    /// fedora-messaging over AMQP, webhooks) and put them on the work queue.
    ///
    /// Each message is decoded, its fedmsg signature checked where the source
    /// requires one, deduped by id over [ingest] dedupe_window, and acked
    /// upstream only once the work queue has it. SIGTERM or Ctrl-C stops
    /// after the messages in hand.
    Bridge,

    /// Print the relflow.toml equivalent to another tool's config (the
    /// global --config is not read).
    #[command(subcommand)]
    Import(ImportCommand),

    /// Check fedmsg envelope files against [fedmsg] (CA, CRL, routing_policy).
    ///
    /// Prints `FILE: valid (signed by CN, serial N)` or `FILE: invalid:
    /// REASON [check]` per file; exits non-zero if any is invalid.
    Verify {
        /// fedmsg envelope JSON files; `-` for stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        json: JsonFlag,
    },

    /// One process for everything: the HTTP API and web page, `/metrics`,
    /// ingest (`POST /api/publish`) and a worker. Each part can be turned
    /// off here or in the config's [http] table.
    ///
    /// Listens on [http] listen (default 127.0.0.1:8088). Replay, purge and
    /// publish need `Authorization: Bearer <token>`: the admin token ([http]
    /// token_file, token, or RELFLOW_HTTP_TOKEN) or a [[http.token]] whose
    /// role allows it (viewer, operator, approver, admin); every mutation is
    /// audited (`relflow audit export`). SIGTERM drains like `relflow worker`.
    Serve(ServeArgs),

    /// Fetch messages the bus lost from Datagrepper and queue the missing ones.
    ///
    /// Reads Datagrepper's /v2/search for the window (all pages) and feeds
    /// every message through the same intake as the bus: fedmsg signatures
    /// are checked where a [[source]] requires them, ids already queued are
    /// dropped, and the worker skips (message, rule) pairs that already ran.
    /// Safe to repeat. Prints `fetched N, queued M new, K already seen`.
    Backfill(BackfillArgs),

    /// The fedora-messaging schemas of the topics relflow sees.
    #[command(subcommand)]
    Schemas(SchemasCommand),

    /// Internal: the per-run process supervisor (see relflow-ansible).
    #[command(name = "__supervise", hide = true)]
    Supervise,
}

impl Command {
    /// Long-running commands (under systemd), as opposed to one-shot CLI calls.
    pub fn is_service(&self) -> bool {
        matches!(self, Command::Worker(_) | Command::Bridge | Command::Serve(_))
    }
}

#[derive(Debug, Args, Clone, Copy)]
pub struct JsonFlag {
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Start of the window: a time ago (`2h`, `30m`) or an RFC 3339 time.
    #[arg(long)]
    pub since: String,
    /// End of the window, like --since (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this topic (exact, as Datagrepper matches it); repeatable.
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// Datagrepper's base URL (default: [backfill] url, else Fedora's).
    #[arg(long)]
    pub url: Option<String>,
    /// Fetch and count, queue nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Write the schemas of every installed fedora-messaging schema package
    /// into [schemas] dir (default `schemas/` beside the config).
    ///
    /// Runs [schemas] python (default: the venv's, beside ansible-playbook)
    /// to load every class of the `fedora.messages` entry points
    /// (bodhi-messages, koji-fedoramessaging-messages, ...), and writes one
    /// JSON Schema per class plus index.json. `relflow check` then checks
    /// conditions against them, and `[[source]] validate` can use them.
    /// Re-run it after installing or upgrading a package.
    Import {
        /// The Python to load the packages with (default: [schemas] python).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Where to write them (default: [schemas] dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A loopabull YAML config, as relflow.toml on stdout.
    ///
    /// One [[rule]] per routing key, running the same playbook path;
    /// playbook_cmd, cfg_file_path and inventory_path as [ansible]; the
    /// `relflow:` settings; a rabbitmq/fedmsgrabbitmq looper with its broker
    /// (rabbitmq.host) as an AMQP [[source]]; [compat] loopabull = true.
    /// What has no equivalent (loglevel, a fedmsg looper, `routing_keys:
    /// [all]`) is a comment saying what to do.
    Loopabull {
        /// The loopabull config (.yml/.yaml).
        file: PathBuf,
    },
}

#[derive(Debug, Args, Clone, Copy)]
pub struct CheckArgs {
    /// Also run `ansible-playbook --syntax-check` on every rule's playbook,
    /// and warn about variables a playbook defines (play vars, vars_files,
    /// group_vars/host_vars) that relflow's extra vars override: `topic`,
    /// `msg_id`, `headers`, `sent_at`.
    #[arg(long)]
    pub playbooks: bool,
    /// Also connect to the work queue and the run store (one line each:
    /// reachable, or why not).
    #[arg(long)]
    pub connect: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Publish one message on this topic, with BODY as its JSON object body.
    #[arg(long, short)]
    pub topic: Option<String>,

    /// With --topic: the JSON body (read from stdin if omitted).
    /// Without --topic: message files (`-` for stdin).
    pub inputs: Vec<String>,

    /// Queue it even if the same message id was queued within [ingest]
    /// dedupe_window (without it, a second publish says it is a duplicate).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides [http] listen); port 0 picks a free one.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Do not run a worker here (playbooks run in `relflow worker` processes).
    #[arg(long)]
    pub no_worker: bool,
    /// Do not accept messages over HTTP (POST /api/publish).
    #[arg(long)]
    pub no_ingest: bool,
    /// No HTTP server at all (only the worker and ingest tasks).
    #[arg(long)]
    pub no_http: bool,
    /// Playbook runs at once (overrides worker.concurrency).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Messages held at once, at least --concurrency (overrides worker.prefetch).
    #[arg(long)]
    pub prefetch: Option<usize>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Exit once the queue has no work left (nothing ready, delayed or in
    /// flight), printing how the messages were settled. Exit status 0: every
    /// message done; 3: some were dead-lettered (`relflow dead-letters list`).
    #[arg(long)]
    pub drain: bool,

    /// Playbook runs at once (overrides worker.concurrency).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Messages held at once, at least --concurrency (overrides worker.prefetch).
    #[arg(long)]
    pub prefetch: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first, with what each message was about.
    ///
    /// Find runs by content with --search (a compose id, NVR, update alias
    /// or their beginning), by topic pattern with --topic 'org.fedoraproject.*.buildsys.#'.
    List(RunsListArgs),
    /// One run: status, timings, task results (ID may be a unique prefix).
    Show {
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// The full ansible-playbook output of a run (of a running run on this
    /// host: what it wrote so far).
    Log {
        id: String,
        /// Keep printing what a running run writes until it ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Run a run's rule again for the same message, even if it succeeded.
    ///
    /// The message is queued again for that rule alone; a worker runs it as
    /// a new run linked to this one (`rerun_of`).
    Rerun {
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Stop a running run, on whichever worker and host holds it.
    ///
    /// The worker holding it notices within about a second, stops the whole
    /// ansible-playbook process tree and records the run as cancelled (the
    /// message is not retried).
    Cancel {
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Approve a run awaiting approval (a rule with `approval = {...}`).
    ///
    /// The run becomes `approved` and its message is queued again; a worker
    /// runs the rule as a new run linked to it (`rerun_of`). The CLI acts as
    /// the local user with store access, like an admin token: the rule's
    /// `approvers` are checked for HTTP tokens, not here. Recorded in the
    /// audit log.
    Approve {
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Deny a run awaiting approval: it ends as `denied` (with who and why
    /// as its error); nothing runs. Recorded in the audit log.
    Deny {
        id: String,
        /// Why, for the run's error and the message's history.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Everything that happened to one message: runs, retries,
    /// redeliveries, dead letters, replays, re-runs and cancels, oldest first.
    History {
        /// The message id (as in `relflow runs list` / `runs show`).
        message_id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub struct RunsListArgs {
    #[arg(long)]
    pub rule: Option<String>,
    /// A topic, or a pattern as in rules: `*` one word, `#` zero or more.
    #[arg(long)]
    pub topic: Option<String>,
    /// Only runs whose message has every word of TEXT, each whole or as
    /// the start of a value or word (case-insensitive), e.g.
    /// `Fedora-Rawhide-20261124.n.0`, `kernel-6.12`, `FEDORA-2026-abc123`.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// running, succeeded, failed, timed_out, cancelled, error or abandoned.
    #[arg(long)]
    pub status: Option<String>,
    /// Only runs started within this long ago, e.g. `2h`, `3d`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Only runs for this message id.
    #[arg(long)]
    pub message: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Runs to skip (at most 10000; page on with --cursor).
    #[arg(long, default_value_t = 0,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(..=relflow_store::MAX_OFFSET as u64))]
    pub offset: usize,
    /// Start after the run a previous page ended with: the cursor printed
    /// on stderr as "next page: --cursor ...". As fast deep as on page one.
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Dead letters, oldest first, with their reasons.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Put a dead letter back on the queue as a fresh first attempt.
    Replay { id: u64 },
    /// Delete every dead letter.
    Purge {
        /// Required: purging cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TimersCommand {
    /// Each timer's schedule, next fire, last fire (scheduled, or an
    /// operator's) and missed slots: due since its last slot while no worker
    /// ran; the first worker to start handles them as `catch_up` says.
    List {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Fire a timer now, as an operator: one message on its topic with a
    /// slot of its own (`fire-<id>`), so the scheduled slots fire as usual.
    /// Recorded in the audit log.
    Fire {
        /// The timer's `name` in the config.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print audit entries, oldest first, one JSON object per line.
    Export {
        /// Output format (one JSON object per line).
        #[arg(long, value_enum, default_value_t = AuditFormat::Jsonl)]
        format: AuditFormat,
        /// Only entries from this long ago on (`2h`, `7d`).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AuditFormat {
    Jsonl,
}
