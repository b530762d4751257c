//! The `flr` command line: one narrow subcommand per release-engineering task.
//! All logic lives in the library; this file parses arguments, applies the
//! config's roots, and prints results as text or `--json`.

use clap::{Args, Parser, Subcommand};
use flr::config::{Config, RootKind};
use flr::{checksum, compose, koji, ostree, sudoers, sync, validate, Error, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "flr", version, about = "Fedora Lib RelEng: narrow release-engineering commands for playbooks")]
struct Cli {
    /// Config file (default /etc/flr/flr.toml, or $FLR_CONFIG). Under sudo it
    /// must be root-owned; only accepted before the subcommand.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    out: Output,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone, Copy)]
struct Output {
    /// Print machine-readable JSON on stdout (also silences progress).
    #[arg(long, global = true)]
    json: bool,
    /// No progress on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Read pungi compose metadata.
    #[command(subcommand)]
    Compose(ComposeCmd),
    /// Create or verify Fedora CHECKSUM files.
    #[command(subcommand)]
    Checksum(ChecksumCmd),
    /// Publish a finished compose into TARGET and update latest-<release>.
    Sync {
        /// Compose directory (or its compose/ subdir, or a mapped URL).
        compose: String,
        /// Directory that receives <COMPOSE_ID>/ and latest-<release>.
        target: PathBuf,
        /// Release name for the latest-<release> link (default: from composeinfo).
        #[arg(long)]
        release: Option<String>,
        /// Verify every CHECKSUM file in the compose before copying.
        #[arg(long)]
        verify_checksums: bool,
        /// Show what would change (rsync --dry-run), change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Koji hub operations (XML-RPC).
    #[command(subcommand)]
    Koji(KojiCmd),
    /// OSTree ref and summary updates.
    #[command(subcommand)]
    Ostree(OstreeCmd),
    /// Print a sudoers.d snippet allowing a user exactly these subcommands.
    Sudoers {
        /// The automation user, e.g. loopabull_compose.
        #[arg(long)]
        user: String,
        /// Comma-separated subcommands (e.g. compose,checksum.verify,sync).
        #[arg(long, value_delimiter = ',', required = true)]
        allow: Vec<String>,
        /// Absolute path of the installed flr binary.
        #[arg(long, default_value = "/usr/bin/flr")]
        flr_path: String,
        /// User the commands run as.
        #[arg(long, default_value = "root")]
        runas: String,
        /// Pin this config file into every rule (`flr --config FILE <subcommand> *`);
        /// callers then pass the same `--config FILE` first. Default: none (flr reads
        /// /etc/flr/flr.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<String>,
    },
}

#[derive(Subcommand)]
enum ComposeCmd {
    /// Compose id, status, release, variants, arches, image and RPM counts.
    Info { dir: String },
    /// Exit 0 if the compose is FINISHED or FINISHED_INCOMPLETE, 3 otherwise.
    Status { dir: String },
    /// Wait until the compose finishes (exit 3 if it fails or times out).
    Wait {
        dir: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// Seconds between STATUS checks.
        #[arg(long, default_value_t = 30)]
        interval: u64,
    },
    /// List images from images.json.
    Images {
        dir: String,
        #[arg(long)]
        variant: Option<String>,
        #[arg(long)]
        arch: Option<String>,
    },
}

#[derive(Subcommand)]
enum ChecksumCmd {
    /// Hash every file in DIR into DIR/<name> (Fedora CHECKSUM format).
    Create {
        /// A directory, or a URL mapped by [compose.url_map].
        dir: String,
        /// File name, must end in CHECKSUM (e.g. Fedora-Server-39-1.5-x86_64-CHECKSUM).
        #[arg(long, default_value = "CHECKSUM")]
        name: String,
        #[arg(long, default_value = "SHA256")]
        algorithm: String,
        /// Overwrite even an already signed CHECKSUM file.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Verify a CHECKSUM file, or every *CHECKSUM file in a directory.
    Verify {
        path: String,
        /// Also search subdirectories (e.g. a whole compose).
        #[arg(long, short)]
        recursive: bool,
        /// Fail if a CHECKSUM file is not clearsigned.
        #[arg(long)]
        require_signed: bool,
    },
}

#[derive(Subcommand)]
enum KojiCmd {
    /// tagBuild(tag, build)
    Tag {
        tag: String,
        nvr: String,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// untagBuild(tag, build)
    Untag {
        tag: String,
        nvr: String,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// packageListBlock(tag, package)
    BlockPkg {
        tag: String,
        package: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// packageListUnblock(tag, package)
    UnblockPkg {
        tag: String,
        package: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// getLatestBuilds(tag[, package])
    LatestTagged { tag: String, package: Option<String> },
    /// listTagged(tag, ...)
    ListTagged {
        tag: String,
        #[arg(long)]
        package: Option<String>,
        #[arg(long)]
        latest: bool,
        #[arg(long)]
        inherit: bool,
    },
}

#[derive(Subcommand)]
enum OstreeCmd {
    /// Point REF at COMMIT (already in the repo).
    UpdateRef {
        repo: PathBuf,
        #[arg(value_name = "REF")]
        reference: String,
        commit: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// List refs; with --update regenerate the summary file.
    Summary {
        repo: PathBuf,
        #[arg(long)]
        update: bool,
        #[arg(long)]
        gpg_sign: Option<String>,
        #[arg(long)]
        gpg_homedir: Option<PathBuf>,
        #[arg(long)]
        dry_run: bool,
    },
}

/// A command's result: JSON form, text form, and an optional failure to
/// report after printing (e.g. a verify report with mismatches).
struct Done {
    json: serde_json::Value,
    text: String,
    fail: Option<Error>,
}

fn done<T: Serialize>(v: &T, text: String) -> Result<Done> {
    let json = serde_json::to_value(v).map_err(|e| Error::Io(format!("cannot serialize output: {e}")))?;
    Ok(Done { json, text, fail: None })
}

fn compose_dir(cfg: &Config, loc: &str) -> Result<PathBuf> {
    let p = cfg.resolve_location(loc)?;
    validate::within_roots("compose directory", &p, &cfg.roots_for(RootKind::Compose)?)
}

fn run(cli: &Cli, cfg: &Config) -> Result<Done> {
    let show_progress = !(cli.out.json || cli.out.quiet);
    let printer = |s: &str| eprintln!("{s}");
    let progress: checksum::Progress = if show_progress { Some(&printer) } else { None };
    match &cli.cmd {
        Cmd::Compose(c) => match c {
            ComposeCmd::Info { dir } => {
                let r = compose::info(&compose_dir(cfg, dir)?)?;
                let mut t = format!(
                    "compose:  {}\nstatus:   {}\nrelease:  {} {} ({})\npath:     {}\nmetadata: productmd {}\narches:   {}\nimages:   {}\nvariants:\n",
                    r.compose_id, r.status, r.release.name, r.release.version, r.release_id, r.path.display(),
                    r.metadata_version, r.arches.join(" "), r.image_count
                );
                for v in &r.variants {
                    t.push_str(&format!("  {:<24} {:<10} {}\n", v.uid, v.kind, v.arches.join(" ")));
                }
                done(&r, t.trim_end().to_string())
            }
            ComposeCmd::Status { dir } => {
                let r = compose::check_status(&compose_dir(cfg, dir)?)?;
                done(&r, format!("{} {}", r.compose_id, r.status))
            }
            ComposeCmd::Wait { dir, timeout, interval } => {
                let r = compose::wait(
                    &compose_dir(cfg, dir)?,
                    Duration::from_secs(*timeout),
                    Duration::from_secs((*interval).max(1)),
                )?;
                done(&r, format!("{} {}", r.compose_id, r.status))
            }
            ComposeCmd::Images { dir, variant, arch } => {
                let rows = compose::images(&compose_dir(cfg, dir)?, variant.as_deref(), arch.as_deref())?;
                let t = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "{:<12} {:<8} {:<8} {:<6} {}",
                            r.variant, r.image.arch, r.image.kind, r.image.format, r.image.path
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                done(&rows, t)
            }
        },
        Cmd::Checksum(c) => match c {
            ChecksumCmd::Create { dir, name, algorithm, force, dry_run } => {
                let d = cfg.resolve_location(dir)?;
                let d = validate::within_roots("directory", &d, &cfg.roots_for(RootKind::Checksum)?)?;
                let r = checksum::create(&d, name, checksum::Algorithm::parse(algorithm)?, *force, *dry_run, progress)?;
                done(&r, format!("{} {} ({} files)", r.action, r.checksum_file.display(), r.entries.len()))
            }
            ChecksumCmd::Verify { path, recursive, require_signed } => {
                let p = cfg.resolve_location(path)?;
                let p = validate::within_roots("path", &p, &cfg.roots_for(RootKind::Compose)?)?;
                let r = checksum::verify(&p, *recursive, *require_signed, progress)?;
                let mut t = String::new();
                for f in &r.files {
                    t.push_str(&format!(
                        "{} {}{}\n",
                        if f.ok { "OK  " } else { "FAIL" },
                        f.checksum_file.display(),
                        if f.signed { " (signed)" } else { "" }
                    ));
                    for e in f.entries.iter().filter(|e| e.status != "ok") {
                        t.push_str(&format!(
                            "     {} {}{}\n",
                            e.status,
                            e.file,
                            e.detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
                        ));
                    }
                }
                let mut d = done(&r, t.trim_end().to_string())?;
                if !r.ok {
                    d.fail =
                        Some(Error::CheckFailed(format!("checksum verification failed: {}", r.failures().join("; "))));
                }
                Ok(d)
            }
        },
        Cmd::Sync { compose, target, release, verify_checksums, dry_run } => {
            let opts = sync::SyncOptions {
                compose_dir: cfg.resolve_location(compose)?,
                target_dir: target.clone(),
                release: release.clone(),
                verify_checksums: *verify_checksums,
                dry_run: *dry_run,
                rsync: cfg.tools.rsync.clone(),
                compose_roots: cfg.roots_for(RootKind::Compose)?,
                sync_roots: cfg.roots_for(RootKind::Sync)?,
            };
            let r = sync::sync(&opts)?;
            done(
                &r,
                format!(
                    "{}synced {} -> {} ({} changes); {} -> {}: {}",
                    if r.dry_run { "[dry-run] " } else { "" },
                    r.compose_id,
                    r.destination.display(),
                    r.changes,
                    r.link.display(),
                    r.link_target,
                    r.link_action
                ),
            )
        }
        Cmd::Koji(k) => {
            let kcfg = cfg.koji.as_ref().ok_or_else(|| {
                Error::Invalid("no [koji] section in the flr config; set hub (and auth) there".into())
            })?;
            let (op, dry) = match k {
                KojiCmd::Tag { tag, nvr, force, dry_run } => (koji::tag_build(tag, nvr, *force)?, *dry_run),
                KojiCmd::Untag { tag, nvr, force, dry_run } => (koji::untag_build(tag, nvr, *force)?, *dry_run),
                KojiCmd::BlockPkg { tag, package, dry_run } => (koji::block_pkg(tag, package, true)?, *dry_run),
                KojiCmd::UnblockPkg { tag, package, dry_run } => (koji::block_pkg(tag, package, false)?, *dry_run),
                KojiCmd::LatestTagged { tag, package } => (koji::latest_tagged(tag, package.as_deref())?, false),
                KojiCmd::ListTagged { tag, package, latest, inherit } => {
                    (koji::list_tagged(tag, package.as_deref(), *latest, *inherit)?, false)
                }
            };
            let r = koji::run(kcfg, &op, dry)?;
            let params = serde_json::to_string(&r.params).unwrap_or_default();
            let text = if r.dry_run {
                format!("[dry-run] would call {}{} on {}", r.method, params, r.hub)
            } else if op.writes {
                format!("{}{}: {}", r.method, params, serde_json::to_string(&r.result).unwrap_or_default())
            } else {
                koji::describe_builds(&r.result).join("\n")
            };
            done(&r, text)
        }
        Cmd::Ostree(o) => {
            let roots = cfg.roots_for(RootKind::Ostree)?;
            match o {
                OstreeCmd::UpdateRef { repo, reference, commit, dry_run } => {
                    let repo = ostree::Repo::open(&cfg.tools.ostree, repo, &roots)?;
                    let r = ostree::update_ref(&repo, reference, commit, *dry_run)?;
                    done(&r, format!("{} {} -> {}: {}", r.repo.display(), r.name, r.commit, r.action))
                }
                OstreeCmd::Summary { repo, update, gpg_sign, gpg_homedir, dry_run } => {
                    let repo = ostree::Repo::open(&cfg.tools.ostree, repo, &roots)?;
                    let r = ostree::summary(&repo, *update, gpg_sign.as_deref(), gpg_homedir.as_deref(), *dry_run)?;
                    let mut t =
                        r.refs.iter().map(|x| format!("{} {}", x.commit, x.name)).collect::<Vec<_>>().join("\n");
                    if r.updated {
                        t.push_str("\nsummary updated");
                    } else if *update {
                        t.push_str("\n[dry-run] summary not updated");
                    }
                    done(&r, t.trim().to_string())
                }
            }
        }
        Cmd::Sudoers { user, allow, flr_path, runas, config } => {
            let grant = sudoers::Grant { user, allow, flr_path, runas, config: config.as_deref() };
            let s = sudoers::snippet(&grant)?;
            done(&serde_json::json!({"user": user, "snippet": s}), s.trim_end().to_string())
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let json = cli.out.json;
    let result = Config::load(cli.config.as_deref()).and_then(|cfg| run(&cli, &cfg));
    // A report printed before a failure (checksum verify) is the JSON
    // document of this run; otherwise print a JSON error object.
    let (err, printed) = match result {
        Ok(d) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&d.json).unwrap_or_default());
            } else if !d.text.is_empty() {
                println!("{}", d.text);
            }
            (d.fail, true)
        }
        Err(e) => (Some(e), false),
    };
    if let Some(e) = err {
        eprintln!("flr: error: {e}");
        if json && !printed {
            println!(
                "{}",
                serde_json::json!({"ok": false, "error": e.to_string(), "kind": e.kind(), "exit_code": e.exit_code()})
            );
        }
        std::process::exit(e.exit_code());
    }
}
