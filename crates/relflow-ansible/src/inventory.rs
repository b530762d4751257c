//! `relflow check` on inventories: does each inventory exist and parse, and
//! does each rule's `limit` match at least one host? Asked of the real
//! `ansible-inventory` that sits next to the configured `ansible-playbook`
//! (the same install, so the same inventory plugins and the same
//! `ansible.cfg`), never of a parser of our own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// What to check: the ansible install and config, and every inventory and
/// `limit` the rules use.
#[derive(Debug, Clone)]
pub struct InventoryCheck {
    /// The configured `ansible-playbook` (`ansible-inventory` is its sibling).
    pub ansible_playbook: PathBuf,
    /// Exported as `ANSIBLE_CONFIG`, as for runs.
    pub ansible_config: Option<PathBuf>,
    /// Where runs start (the playbooks dir): ansible finds `ansible.cfg` there.
    pub cwd: PathBuf,
    pub targets: Vec<InventoryTarget>,
}

/// One rule's inventory (`None`: ansible's default) and `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryTarget {
    pub rule: String,
    pub inventory: Option<String>,
    pub limit: Option<String>,
}

/// Problems make `relflow check` fail; warnings are printed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

impl InventoryCheck {
    /// Runs `ansible-inventory --list` once per inventory, and once more per
    /// distinct (inventory, limit).
    pub fn run(&self) -> Findings {
        let mut found = Findings::default();
        let Some(program) = self.program() else {
            found.warnings.push(format!(
                "inventories not checked: no ansible-inventory next to {}",
                self.ansible_playbook.display()
            ));
            return found;
        };
        // ansible's default inventory may well be absent (implicit
        // localhost): only configured ones must exist and parse.
        let inventories: BTreeSet<&str> = self.targets.iter().filter_map(|t| t.inventory.as_deref()).collect();
        let mut parsed = BTreeSet::from([None]);
        for inventory in inventories {
            match self.hosts(&program, Some(inventory), None) {
                Ok(_) => {
                    parsed.insert(Some(inventory));
                }
                Err(e) => found.problems.push(e),
            }
        }
        let limits: BTreeSet<(Option<&str>, &str)> =
            self.targets.iter().filter_map(|t| Some((t.inventory.as_deref(), t.limit.as_deref()?))).collect();
        for (inventory, limit) in limits.into_iter().filter(|(i, _)| parsed.contains(i)) {
            let hosts = match self.hosts(&program, inventory, Some(limit)) {
                Ok(hosts) => hosts,
                Err(e) => {
                    found.problems.push(e);
                    continue;
                }
            };
            if hosts.is_empty() {
                let rules = self.rules_using(inventory, limit);
                found.warnings.push(format!(
                    "{rules}: limit {limit:?} matches no host in {}: its runs would fail with \"no hosts matched\"",
                    describe(inventory)
                ));
            }
        }
        found
    }

    /// `ansible-inventory` beside `ansible-playbook` (resolved on PATH if
    /// it is a bare name).
    fn program(&self) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        crate::runner::sibling_program(&self.ansible_playbook, "ansible-inventory", &path)
    }

    /// The hosts `inventory` (limited to `limit`) has, or why it cannot say.
    fn hosts(&self, program: &Path, inventory: Option<&str>, limit: Option<&str>) -> Result<Vec<String>, String> {
        if let Some(path) = inventory.filter(|i| !i.contains(',')) {
            if !Path::new(path).exists() {
                return Err(format!("inventory {path} does not exist"));
            }
        }
        let mut cmd = Command::new(program);
        // `--opt=value`: a value starting with `-` cannot become an option.
        cmd.arg("--list").args(inventory.map(|i| format!("--inventory={i}")));
        cmd.args(limit.map(|l| format!("--limit={l}")));
        if inventory.is_some() {
            // A configured inventory ansible cannot parse is an error, not
            // a warning and an empty host list.
            cmd.env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
                .env("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "true");
        }
        if let Some(cfg) = &self.ansible_config {
            cmd.env("ANSIBLE_CONFIG", cfg);
        }
        if self.cwd.is_dir() {
            cmd.current_dir(&self.cwd);
        }
        let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !out.status.success() {
            let why = ansible_errors(&String::from_utf8_lossy(&out.stderr));
            return Err(format!("{} does not parse: {why}", describe(inventory)));
        }
        let listed: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{}: ansible-inventory printed no JSON: {e}", describe(inventory)))?;
        Ok(hosts_of(&listed))
    }

    fn rules_using(&self, inventory: Option<&str>, limit: &str) -> String {
        let names: Vec<String> = self
            .targets
            .iter()
            .filter(|t| t.inventory.as_deref() == inventory && t.limit.as_deref() == Some(limit))
            .map(|t| format!("rule {:?}", t.rule))
            .collect();
        names.join(", ")
    }
}

fn describe(inventory: Option<&str>) -> String {
    match inventory {
        Some(i) => format!("inventory {i}"),
        None => "ansible's default inventory".to_owned(),
    }
}

/// Every host any group of `ansible-inventory --list` output lists.
fn hosts_of(listed: &Value) -> Vec<String> {
    let Some(groups) = listed.as_object() else { return Vec::new() };
    let hosts: BTreeSet<&str> = groups
        .iter()
        .filter(|(name, _)| *name != "_meta")
        .filter_map(|(_, g)| g.get("hosts")?.as_array())
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    hosts.into_iter().map(str::to_owned).collect()
}

/// ansible's error and "Failed to parse" lines, without the noise around
/// them; all of stderr if it has none.
fn ansible_errors(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("[ERROR]") || l.starts_with("ERROR!") || l.starts_with("Failed to parse inventory:"))
        .collect();
    if lines.is_empty() {
        return stderr.trim().to_owned();
    }
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_collected_from_every_group() {
        let listed = serde_json::json!({
            "_meta": {"hostvars": {"w1": {}}},
            "all": {"children": ["ungrouped", "web"]},
            "web": {"hosts": ["w1", "w2"]},
            "ungrouped": {"hosts": ["u1", "w1"]},
        });
        assert_eq!(hosts_of(&listed), ["u1", "w1", "w2"]);
        assert!(hosts_of(&serde_json::json!({"all": {"children": ["ungrouped"]}})).is_empty());
    }

    #[test]
    fn only_ansibles_error_lines_are_kept() {
        let stderr =
            "[WARNING]: Failed to parse inventory with 'ini' plugin: x\n\nFailed to parse inventory with 'ini' \
                      plugin.\n\n<<< caused by >>>\n\nFailed to parse inventory: not enough values\nOrigin: /x\n\
                      [ERROR]: No inventory was parsed, please check your configuration and options.\n";
        assert_eq!(
            ansible_errors(stderr),
            "Failed to parse inventory: not enough values; [ERROR]: No inventory was parsed, please check your \
             configuration and options."
        );
    }
}
