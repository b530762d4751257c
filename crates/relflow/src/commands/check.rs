//! `relflow check`: is this config going to work?

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use relflow_core::config::timer::rfc3339;
use relflow_core::config::PlaybookSpec;
use relflow_core::redact::redact_url;
use relflow_core::Config;
use serde_json::json;

use crate::cli::CheckArgs;

/// How long `--connect` waits for each backend: a broker that is down
/// would otherwise be retried for the queue's whole reconnect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(path: &Path, args: CheckArgs) -> Result<ExitCode> {
    let json = args.json.json;
    let mut config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            if json {
                super::print_json(&json!({"ok": false, "problems": [e.to_string()]}))?;
            } else {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut problems = problems(&config);
    // Conditions on sample messages, and playbook syntax: relflow-check.
    let rule_checks = relflow_check::check(&config, args.playbooks);
    problems.extend(rule_checks.errors());
    let inventories = relflow_engine::options::inventory_check(&config).run();
    problems.extend(inventories.problems);
    config.warnings.extend(inventories.warnings);
    // Addresses may carry a password: show them redacted, in text and JSON alike.
    let urls = config.queue.broker_urls();
    let queue = if urls.is_empty() {
        "embedded (SQLite)".to_owned()
    } else {
        urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>().join(", ")
    };
    let store = config.store.url.as_deref().map_or_else(|| "embedded (SQLite)".to_owned(), redact_url);
    let connections = if args.connect { Some(connect(&config).await) } else { None };
    if let Some(c) = &connections {
        problems.extend(c.problems());
    }
    if json {
        super::print_json(&json!({
            "ok": problems.is_empty(),
            "config": config.path,
            "playbooks_dir": config.playbooks_dir,
            "data_dir": config.data_dir,
            "queue": queue,
            "store": store,
            "rules": config.rules,
            "timers": config.timers,
            "warnings": config.warnings,
            "translated": config.translated,
            "problems": problems,
            "rule_checks": rule_checks,
            "connections": connections,
        }))?;
    } else {
        println!("config:        {}", config.path.display());
        println!("playbooks_dir: {}", config.playbooks_dir.display());
        println!("data_dir:      {}", config.data_dir.display());
        println!("queue:         {queue}");
        println!("store:         {store}");
        if let Some(c) = &connections {
            println!("{c}");
        }
        println!("{} rule(s):", config.rules.len());
        for rule in &config.rules {
            let playbook = match &rule.playbook {
                PlaybookSpec::File(p) => p.display().to_string(),
                PlaybookSpec::FromTopic(t) => format!("<topic via {t:?}>"),
            };
            println!("  {:<24} {} -> {}", rule.name, rule.topic, playbook);
            if let Some(when) = &rule.when {
                println!("  {:<24} when {}", "", when.source());
            }
        }
        if !config.timers.is_empty() {
            println!("{} timer(s):", config.timers.len());
        }
        for t in &config.timers {
            let next = t.slots.next_after(chrono::Utc::now()).map_or_else(|| "never".into(), rfc3339);
            println!("  {:<24} {:?} {} -> {} (next {next})", t.name, t.schedule, t.timezone, t.topic());
        }
        for t in &config.translated {
            println!("translated: {t}");
        }
        print!("{rule_checks}");
        for w in &config.warnings {
            println!("warning: {w}");
        }
        for p in &problems {
            eprintln!("error: {p}");
        }
        if problems.is_empty() {
            println!("ok");
        }
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `check --connect`: whether the queue and the store answered.
#[derive(Debug, serde::Serialize)]
struct Connections {
    queue: Probe,
    store: Probe,
}

/// One backend's answer, in one line: what it said, or why it did not.
#[derive(Debug, serde::Serialize)]
struct Probe {
    ok: bool,
    detail: String,
}

impl Connections {
    fn problems(&self) -> Vec<String> {
        let failed = |what: &str, p: &Probe| (!p.ok).then(|| format!("{what}: {}", p.detail));
        [failed("queue", &self.queue), failed("store", &self.store)].into_iter().flatten().collect()
    }
}

impl std::fmt::Display for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = |p: &Probe| if p.ok { format!("connected ({})", p.detail) } else { "cannot connect (below)".into() };
        write!(f, "queue connect: {}\nstore connect: {}", line(&self.queue), line(&self.store))
    }
}

async fn connect(config: &Config) -> Connections {
    let queue = probe(async {
        let queue = relflow_engine::open_queue(config, 1).await?;
        let depth = queue.depth().await?;
        Ok(format!("{} ready, {} dead", depth.ready, depth.dead))
    });
    let store = probe(async {
        let store = relflow_engine::open_store(config).await?;
        let runs = store.count(&relflow_store::RunFilter::default()).await?;
        Ok(format!("{runs} run(s) recorded"))
    });
    let (queue, store) = tokio::join!(queue, store);
    Connections { queue, store }
}

/// Runs one backend's probe, for at most [`CONNECT_TIMEOUT`].
async fn probe(check: impl std::future::Future<Output = Result<String>>) -> Probe {
    match tokio::time::timeout(CONNECT_TIMEOUT, check).await {
        Ok(Ok(detail)) => Probe { ok: true, detail },
        Ok(Err(e)) => Probe { ok: false, detail: format!("{e:#}") },
        Err(_) => Probe { ok: false, detail: format!("no answer within {CONNECT_TIMEOUT:?}") },
    }
}

/// What would make runs fail even though the config parsed.
fn problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if !config.playbooks_dir.is_dir() {
        problems.push(format!("playbooks_dir {} is not a directory", config.playbooks_dir.display()));
    }
    for rule in &config.rules {
        if let PlaybookSpec::File(_) = rule.playbook {
            // The topic only matters for topic-derived playbooks.
            if let Err(e) = config.playbook_path(rule, "") {
                problems.push(format!("rule {:?}: {e}", rule.name));
            }
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if relflow_ansible::find_program(&config.ansible.playbook_cmd, &path).is_none() {
        problems.push(format!(
            "ansible playbook_cmd {} not found (run scripts/setup.sh for a local venv or scripts/install.sh for a system one, or set [ansible] playbook_cmd)",
            config.ansible.playbook_cmd.display()
        ));
    }
    if let Some(cfg) = &config.ansible.config {
        if !cfg.is_file() {
            problems.push(format!("ansible config {} does not exist", cfg.display()));
        }
    }
    problems
}
