//! Playbook variables that relflow's extra vars would silently override.
//!
//! A run passes `topic`, `msg_id`, `headers` and `sent_at` as top-level
//! extra vars (the contract), and extra vars win over every other variable
//! in Ansible. A play with `vars: {headers: {Accept: application/json}}`
//! would see the message's headers instead of its own, without a word; so
//! `check --playbooks` names each file that defines one of these names:
//! a play's `vars:` and `vars_files`, an `import_playbook`'s plays, and the
//! `group_vars/`/`host_vars/` beside the playbooks, the playbooks dir and
//! the inventories.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use relflow_core::config::PlaybookSpec;
use relflow_core::Config;
use serde_yaml::Value;

/// The top-level extra vars a playbook's own variables cannot win over.
const EXTRA_VAR_NAMES: [&str; 4] = ["topic", "msg_id", "headers", "sent_at"];

/// How deep `import_playbook` is followed (a loop is cut by the visited set).
const MAX_IMPORT_DEPTH: usize = 8;

/// One warning per (file, name), in a stable order.
pub fn shadowed_vars(config: &Config) -> Vec<String> {
    let mut found = Found::default();
    let mut dirs = BTreeSet::from([config.playbooks_dir.clone()]);
    for rule in &config.rules {
        let PlaybookSpec::File(_) = &rule.playbook else { continue };
        let Ok(path) = config.playbook_path(rule, "") else { continue };
        dirs.extend(path.parent().map(Path::to_path_buf));
        found.playbook(&path, 0);
    }
    let inventories =
        config.rules.iter().filter_map(|r| r.inventory.as_deref()).chain(config.ansible.inventory.as_deref());
    for inventory in inventories.filter(|i| !i.contains(',')) {
        let path = Path::new(inventory);
        dirs.extend(if path.is_dir() { Some(path.to_path_buf()) } else { path.parent().map(Path::to_path_buf) });
    }
    for dir in dirs {
        for sub in ["group_vars", "host_vars"] {
            found.vars_dir(&dir.join(sub));
        }
    }
    found.warnings.into_iter().collect()
}

#[derive(Default)]
struct Found {
    warnings: BTreeSet<String>,
    visited: BTreeSet<PathBuf>,
}

impl Found {
    fn warn(&mut self, file: &Path, name: &str, place: &str) {
        self.warnings.insert(format!(
            "{}: {place} defines `{name}`, which relflow's extra var `{name}` (the message's) overrides in every \
             run; rename it (relflow's value is also `relflow.{name}`)",
            file.display()
        ));
    }

    /// The plays of a playbook file, and what they import.
    fn playbook(&mut self, path: &Path, depth: usize) {
        if depth > MAX_IMPORT_DEPTH || !self.visited.insert(path.to_path_buf()) {
            return;
        }
        let Some(Value::Sequence(plays)) = read_yaml(path) else { return };
        let dir = path.parent().unwrap_or(Path::new("/"));
        for (i, play) in plays.iter().enumerate() {
            let label = match play.get("name").and_then(Value::as_str) {
                Some(name) => format!("play {name:?}"),
                None => format!("play {}", i + 1),
            };
            for name in shadowing_keys(play.get("vars")) {
                self.warn(path, name, &format!("{label} `vars:`"));
            }
            for file in vars_files(play.get("vars_files")) {
                self.vars_file(&dir.join(file));
            }
            let import = play.get("import_playbook").or(play.get("ansible.builtin.import_playbook"));
            if let Some(file) = import.and_then(Value::as_str).filter(|f| !f.contains("{{")) {
                self.playbook(&dir.join(file), depth + 1);
            }
        }
    }

    fn vars_file(&mut self, path: &Path) {
        if !self.visited.insert(path.to_path_buf()) {
            return;
        }
        for name in shadowing_keys(read_yaml(path).as_ref()) {
            self.warn(path, name, "this vars file");
        }
    }

    /// Every file under a `group_vars/` or `host_vars/` dir, as ansible
    /// reads them (a file per group or host, or a dir of files).
    fn vars_dir(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                self.vars_dir(&path);
            } else if matches!(path.extension().and_then(|e| e.to_str()), None | Some("yml" | "yaml" | "json")) {
                self.vars_file(&path);
            }
        }
    }
}

/// The names of `vars` (a mapping) that are relflow's extra vars.
fn shadowing_keys(vars: Option<&Value>) -> Vec<&'static str> {
    let Some(Value::Mapping(map)) = vars else { return Vec::new() };
    EXTRA_VAR_NAMES.into_iter().filter(|n| map.contains_key(*n)).collect()
}

/// `vars_files` entries: paths, or lists of alternatives; templated ones
/// cannot be known before a run.
fn vars_files(value: Option<&Value>) -> Vec<&str> {
    let Some(Value::Sequence(items)) = value else { return Vec::new() };
    let flat = items.iter().flat_map(|v| match v {
        Value::Sequence(alternatives) => alternatives.iter().collect(),
        other => vec![other],
    });
    flat.filter_map(Value::as_str).filter(|f| !f.contains("{{")).collect()
}

/// The file as YAML, or `None` if it cannot be read or parsed (a vault
/// file, a syntax error: `--syntax-check` reports those that matter).
fn read_yaml(path: &Path) -> Option<Value> {
    serde_yaml::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_in_vars_and_vars_files_alternatives() {
        let vars: Value = serde_yaml::from_str("{headers: {}, topic: x, other: 1}").unwrap();
        assert_eq!(shadowing_keys(Some(&vars)), ["topic", "headers"]);
        let files: Value = serde_yaml::from_str("[a.yml, [b.yml, c.yml], '{{ x }}.yml']").unwrap();
        assert_eq!(vars_files(Some(&files)), ["a.yml", "b.yml", "c.yml"]);
    }
}
