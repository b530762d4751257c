//! `relflow dry-run`: for one message, every rule's verdict on one line
//! (topic, condition, missing key, evaluation error), the runs it would
//! make with their exact extra vars, and the Jinja dict-method traps in it.
//! With imported schemas, also its class, whether it is valid, and the
//! class's own summary line.

use std::fmt;
use std::path::{Path, PathBuf};

use relflow_core::condition::Outcome;
use relflow_core::config::PlaybookSpec;
use relflow_core::{explain_rules, Config, Message};
use relflow_schemas::SchemaSet;
use serde::Serialize;

/// What one message file would cause.
#[derive(Debug, Serialize)]
pub struct MessageReport {
    /// The file as given on the command line.
    pub file: PathBuf,
    /// The message id (derived from the content when the bus gave none).
    pub msg_id: String,
    /// The message's topic.
    pub topic: String,
    /// Every rule, in config order.
    pub rules: Vec<RuleLine>,
    /// What each matching rule would run.
    pub runs: Vec<RunReport>,
    /// Keys Jinja would read as dict methods, naming the playbooks that write them so.
    pub warnings: Vec<String>,
    /// With imported schemas: the message's class, its validity and summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaReport>,
}

/// What the imported schemas say about the message.
#[derive(Debug, Serialize)]
pub struct SchemaReport {
    /// The class that accepts it; `None` when none does.
    pub class: Option<String>,
    /// Why it fails its schema, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
    /// The class's own one-line summary (fedora-messaging's `summary`).
    pub summary: Option<String>,
    /// Why there is no summary, when the class could not give one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary_error: Option<String>,
}

/// One rule's verdict on the message.
#[derive(Debug, Serialize)]
pub struct RuleLine {
    /// The rule's name.
    pub rule: String,
    /// Whether the rule would run for this message.
    pub matched: bool,
    /// Whether the topic matched the rule's pattern.
    pub topic_matched: bool,
    /// `true`, `false`, `missing` or `error`; absent if not evaluated.
    pub condition: Option<&'static str>,
    /// The key path the message lacks, when that made the condition false.
    pub missing_key: Option<String>,
    /// The evaluation error, when there was one.
    pub error: Option<String>,
    /// The verdict in words.
    pub explanation: String,
}

/// One run a rule would make.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The rule's name.
    pub rule: String,
    /// The playbook file that would run.
    pub playbook: Option<String>,
    /// Why the playbook cannot run (missing, outside playbooks_dir).
    pub playbook_error: Option<String>,
    /// Left out with `--rules-only`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_vars: Option<serde_json::Value>,
    /// With `[announce]`: what the run would announce and start.
    pub announces: Option<relflow_announce::Plan>,
    /// A `coalesce` or `join` rule: which batch the message would go into.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
}

impl MessageReport {
    /// `with_vars: false` is `--rules-only`: no extra vars dump.
    pub fn new(config: &Config, file: PathBuf, msg: &Message, with_vars: bool) -> MessageReport {
        let mut rules = Vec::new();
        let mut runs = Vec::new();
        let mut warnings = Vec::new();
        let traps = crate::traps::dict_method_keys(msg);
        let announce = relflow_engine::options::announce(config);
        for (rule, verdict) in explain_rules(&config.rules, msg) {
            let (condition, missing_key, error) = match &verdict.condition {
                None => (None, None, None),
                Some(Outcome::True) => (Some("true"), None, None),
                Some(Outcome::False) => (Some("false"), None, None),
                Some(Outcome::Missing(k)) => (Some("missing"), Some(k.clone()), None),
                Some(Outcome::Error(e)) => (Some("error"), None, Some(e.to_string())),
            };
            let matched = verdict.is_match();
            rules.push(RuleLine {
                rule: rule.name.clone(),
                matched,
                topic_matched: verdict.topic_matches,
                condition,
                missing_key,
                error,
                explanation: verdict.to_string(),
            });
            if !matched {
                continue;
            }
            let playbook = config.playbook_path(rule, &msg.topic);
            let text = playbook.as_ref().ok().and_then(|p| std::fs::read_to_string(p).ok());
            let name = match &rule.playbook {
                PlaybookSpec::File(p) => p.display().to_string(),
                PlaybookSpec::FromTopic(_) => "the playbook".into(),
            };
            for path in &traps {
                let w = crate::traps::warning(path, text.as_deref().map(|t| (name.as_str(), t)));
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            runs.push(RunReport {
                rule: rule.name.clone(),
                playbook: playbook.as_ref().ok().map(|p| p.display().to_string()),
                playbook_error: playbook.as_ref().err().map(ToString::to_string),
                extra_vars: with_vars
                    .then(|| relflow_engine::extra_vars(msg, &rule.name, "dry-run", 1, &config.compat).to_json()),
                announces: announce.as_ref().and_then(|a| relflow_announce::plan(a, &config.rules, rule, msg, "")),
                batch: relflow_engine::would_buffer(rule, msg),
            });
        }
        if runs.is_empty() {
            // No playbook runs, but whoever writes the rule for this message will meet the keys.
            warnings.extend(traps.iter().map(|path| crate::traps::warning(path, None)));
        }
        MessageReport { file, msg_id: msg.id.clone(), topic: msg.topic.clone(), rules, runs, warnings, schema: None }
    }

    /// Adds what `set` says of the message, and its summary line from the
    /// class itself (run in `python`). Nothing when no class describes it.
    pub fn with_schema(mut self, set: &SchemaSet, python: &Path, msg: &Message) -> MessageReport {
        let (class, invalid) = match set.validate(&msg.topic, &msg.headers, &msg.body) {
            Ok(None) => return self,
            Ok(Some(class)) => (Some(class.to_owned()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let (summary, summary_error) = match relflow_schemas::summary(set, python, &msg.topic, &msg.headers, &msg.body)
        {
            Ok(s) => (s, None),
            Err(e) => (None, Some(e.to_string())),
        };
        self.schema = Some(SchemaReport { class, invalid, summary, summary_error });
        self
    }
}

impl fmt::Display for SchemaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.class, &self.invalid) {
            (Some(class), _) => writeln!(f, "  schema: {class} (valid)")?,
            (None, Some(why)) => writeln!(f, "  schema: INVALID: {why}")?,
            (None, None) => {}
        }
        match (&self.summary, &self.summary_error) {
            (Some(s), _) => writeln!(f, "  summary: {s}"),
            (None, Some(e)) => writeln!(f, "  summary: none ({e})"),
            (None, None) => Ok(()),
        }
    }
}

impl fmt::Display for MessageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} ({})", self.file.display(), self.topic, self.msg_id)?;
        if let Some(schema) = &self.schema {
            write!(f, "{schema}")?;
        }
        let width = self.rules.iter().map(|r| r.rule.len()).max().unwrap_or(0).min(32);
        for r in &self.rules {
            writeln!(f, "  {:<width$}  {}", r.rule, r.explanation)?;
        }
        if self.runs.is_empty() {
            writeln!(f, "  no rule matches: the message would be acked as a no-op")?;
        }
        for run in &self.runs {
            match (&run.playbook, &run.playbook_error) {
                (Some(p), _) => writeln!(f, "  run {:?} -> {p}", run.rule)?,
                (None, err) => writeln!(f, "  run {:?} -> cannot run: {}", run.rule, err.as_deref().unwrap_or("?"))?,
            }
            if let Some(batch) = &run.batch {
                writeln!(f, "  {batch}")?;
            }
            if let Some(plan) = &run.announces {
                write!(f, "{plan}")?;
            }
            if let Some(vars) = &run.extra_vars {
                let vars = serde_json::to_string_pretty(vars).map_err(|_| fmt::Error)?;
                writeln!(f, "  extra vars:")?;
                for line in vars.lines() {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}
