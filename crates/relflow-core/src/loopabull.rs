//! Loading a loopabull YAML config unchanged, so Fedora's existing setup
//! (and its playbooks) move to relflow without edits.
//!
//! loopabull 0.0.7 reads:
//!
//! ```yaml
//! plugins:
//!   looper: {name: fedmsgrabbitmq, ...}   # how messages arrive
//!   translator: {name: rkname}            # rkname (default) or rkdirectory
//! routing_keys:
//!   - org.fedoraproject.prod.buildsys.build.state.change   # or `all` first
//! ansible:
//!   playbooks_dir: /srv/loopabull-tasks/playbooks
//!   cfg_file_path: /etc/ansible/ansible.cfg
//!   playbook_cmd: /usr/bin/ansible-playbook
//! ```
//!
//! Older loopabull spelled the translator `path_translator:` at the top level
//! and had `ansible.inventory_path`; both are accepted. Each routing key
//! becomes a rule that runs `<playbooks_dir>/<translated key>.yml`, exactly
//! the path loopabull builds, and matches that exact topic (`*` and `#` are
//! literal, as in loopabull's string comparison). `all` (as the first key, as
//! loopabull checks it) becomes one rule for every topic whose playbook is
//! derived per message.
//!
//! Unknown keys are errors with a did-you-mean (`config/loopabull_keys.rs`);
//! loopabull compatibility (`[compat] loopabull`) is on. A complete
//! `rabbitmq`/`fedmsgrabbitmq` looper becomes an AMQP `[[source]]`
//! (`config/loopabull_looper.rs`); `loopabull_import.rs` writes the whole
//! config as relflow.toml. A `relflow:` mapping
//! holds relflow-only settings loopabull did not have:
//!
//! ```yaml
//! relflow:
//!   retries: 3          # each rule; loopabull requeued forever
//!   retry_delay: 1m     # [worker] retry_delay
//!   timeout: 6h         # each rule; default 1h
//!   concurrency: 1      # [worker] concurrency; loopabull ran one at a time
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::loopabull_looper::{self, Looper};
use crate::config::{
    check_relative, config_dir, ingest, loopabull_keys, Config, ConfigError, PlaybookSpec, SourceConfig,
};
use crate::rules::Rule;
use crate::TopicPattern;

/// loopabull's routing-key-to-playbook translators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Translator {
    /// `a.b.c` -> `a.b.c.yml`
    Rkname,
    /// `a.b.c` -> `a/b/c.yml`
    Rkdirectory,
}

impl Translator {
    /// The playbook path, relative to the playbooks dir, for `routing_key`.
    pub fn translate(self, routing_key: &str) -> PathBuf {
        match self {
            Translator::Rkname => PathBuf::from(format!("{routing_key}.yml")),
            Translator::Rkdirectory => {
                let mut path: PathBuf = routing_key.split('.').collect();
                let file = format!("{}.yml", path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default());
                path.set_file_name(file);
                path
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawLoopabull {
    #[serde(default)]
    routing_keys: Vec<String>,
    ansible: RawAnsible,
    #[serde(default)]
    plugins: Option<RawPlugins>,
    /// loopabull before 0.0.5.
    path_translator: Option<Translator>,
    /// relflow-only settings. (Keys loopabull read that relflow does not
    /// use were checked, and warned about, by `loopabull_keys`.)
    #[serde(default)]
    relflow: Extension,
}

/// `relflow:` in a loopabull YAML.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Extension {
    retries: Option<u32>,
    #[serde(default, with = "humantime_serde::option")]
    retry_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    timeout: Option<Duration>,
    concurrency: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct RawAnsible {
    playbooks_dir: PathBuf,
    cfg_file_path: Option<PathBuf>,
    playbook_cmd: Option<PathBuf>,
    inventory_path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawPlugins {
    translator: Option<RawPlugin>,
}

#[derive(Debug, Deserialize)]
struct RawPlugin {
    name: String,
}

/// Builds a [`Config`] from loopabull YAML text read from `path`.
pub fn from_yaml(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let yaml = |e: serde_yaml::Error| ConfigError::Yaml { path: path.into(), message: e.to_string() };
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(yaml)?;
    let invalid = |message: String| ConfigError::Invalid { path: path.into(), message };
    let warnings = loopabull_keys::check(&doc).map_err(invalid)?;
    let raw: RawLoopabull = serde_yaml::from_value(doc.clone()).map_err(yaml)?;

    let translator = match raw.plugins.as_ref().and_then(|p| p.translator.as_ref()) {
        Some(t) => match t.name.to_lowercase().as_str() {
            "rkname" => Translator::Rkname,
            "rkdirectory" => Translator::Rkdirectory,
            other => {
                return Err(invalid(format!("unknown translator {other:?}; loopabull has rkname and rkdirectory")))
            }
        },
        None => raw.path_translator.unwrap_or(Translator::Rkname),
    };

    let mut config = Config::base(path, &raw.ansible.playbooks_dir, None);
    config.compat.loopabull = true;
    config.warnings = warnings;
    let ext = raw.relflow;
    if let Some(n) = ext.concurrency {
        if n == 0 {
            return Err(invalid("relflow.concurrency must be at least 1".into()));
        }
        config.worker.concurrency = n;
    }
    if let Some(delay) = ext.retry_delay {
        config.worker.retry_delay = delay;
    }
    if ext.timeout.is_some_and(|t| t.is_zero()) {
        return Err(invalid("relflow.timeout must be more than 0s".into()));
    }
    if let Some(cmd) = raw.ansible.playbook_cmd {
        config.ansible.playbook_cmd = cmd;
    }
    config.ansible.config = raw.ansible.cfg_file_path;
    config.ansible.inventory = raw.ansible.inventory_path;
    match loopabull_looper::translate(&doc, &raw.routing_keys) {
        Looper::None => {}
        Looper::Unused(warning) => config.warnings.push(warning),
        Looper::Source(source) => {
            config.sources.push(*source);
            ingest::validate(&mut config.sources, None, &config_dir(path))
                .map_err(|e| invalid(format!("plugins.looper: {e}")))?;
            config.translated.push(translated_source(&config.sources[0]));
        }
    }

    let rule = |name: &str, topic: TopicPattern, playbook: PlaybookSpec| Rule {
        name: name.to_owned(),
        topic,
        when: None,
        playbook,
        // loopabull had no timeout; an hour stops a hung playbook without
        // cutting a long compose sync short.
        timeout: ext.timeout.unwrap_or(Duration::from_secs(3600)),
        retries: ext.retries.unwrap_or(0),
        inventory: None,
        limit: None,
        allow_no_hosts: false,
        concurrency_group: None,
        tests: Vec::new(),
        announce: true,
        announce_body: false,
        coalesce: None,
        join: None,
        approval: None,
    };
    // loopabull: `if rk not in routing_keys and routing_keys[0] != "all"`.
    if raw.routing_keys.first().map(String::as_str) == Some("all") {
        let all = TopicPattern::parse("#").map_err(|e| invalid(e.to_string()))?;
        config.rules.push(rule("all", all, PlaybookSpec::FromTopic(translator)));
    } else {
        for key in &raw.routing_keys {
            if key.contains(['*', '#']) {
                config.warnings.push(format!(
                    "routing key {key:?}: loopabull compared routing keys as exact strings, so `*` and `#` are \
                     literal here and no topic can match; for a wildcard write a relflow.toml rule \
                     (`relflow import loopabull` converts the file)"
                ));
            }
            let topic = TopicPattern::exact(key);
            let playbook = translator.translate(key);
            check_relative(&playbook).map_err(|e| invalid(format!("routing key {key:?}: {e}")))?;
            config.rules.push(rule(key, topic, PlaybookSpec::File(playbook)));
        }
    }
    if config.rules.is_empty() {
        config.warnings.push("routing_keys is empty: every message will be acked as a no-op".into());
    }
    config.resolve_paths();
    Ok(config)
}

/// What `check` prints for the translated looper (the URL redacted).
fn translated_source(source: &SourceConfig) -> String {
    let SourceConfig::Amqp(a) = source else { return format!("plugins.looper -> [[source]] {:?}", source.name()) };
    format!(
        "plugins.looper -> [[source]] type = \"amqp\", name = {:?}: {} exchange {:?}, queue {:?}, bindings {:?} \
         (`relflow bridge` consumes it)",
        a.name,
        crate::redact::redact_url(&a.url),
        a.exchange,
        a.queue_name(),
        a.bindings
    )
}
