//! Every rule's playbook through `ansible-playbook --syntax-check`, run the
//! way the worker would run it (same program, environment, ANSIBLE_CONFIG,
//! inventory and working directory), so broken YAML is found before a
//! message is, instead of as a failed run that is retried.

use std::path::PathBuf;

use relflow_core::config::PlaybookSpec;
use relflow_core::Config;
use serde::Serialize;

/// One playbook's syntax check.
#[derive(Debug, Clone, Serialize)]
pub struct PlaybookCheck {
    /// As written in the rules (relative to playbooks_dir).
    pub name: String,
    /// The resolved file.
    pub path: PathBuf,
    /// The rules that run it.
    pub rules: Vec<String>,
    /// `None` if it passed.
    pub error: Option<String>,
}

/// Each distinct (playbook, inventory) once, in rule order. Rules whose
/// playbook is missing are left to `check`'s own error for that, and
/// playbooks named after each message's topic (loopabull's `all`) cannot be
/// known in advance.
pub fn syntax_check_all(config: &Config) -> Vec<PlaybookCheck> {
    let runner = relflow_engine::options::runner(config);
    let mut checks: Vec<(PlaybookCheck, Option<String>)> = Vec::new();
    for rule in &config.rules {
        let PlaybookSpec::File(name) = &rule.playbook else { continue };
        let Ok(path) = config.playbook_path(rule, "") else { continue };
        let inventory = rule.inventory.clone().or_else(|| config.ansible.inventory.clone());
        match checks.iter_mut().find(|(c, inv)| c.path == path && *inv == inventory) {
            Some((c, _)) => c.rules.push(rule.name.clone()),
            None => {
                let check = PlaybookCheck {
                    name: name.display().to_string(),
                    path,
                    rules: vec![rule.name.clone()],
                    error: None,
                };
                checks.push((check, inventory));
            }
        }
    }
    for (c, inventory) in &mut checks {
        let result = relflow_ansible::syntax_check(&runner, &c.path, inventory.as_deref(), &config.playbook_cwd());
        c.error = result.err().map(|e| format!("ansible-playbook --syntax-check failed:\n{e}"));
    }
    checks.into_iter().map(|(c, _)| c).collect()
}
