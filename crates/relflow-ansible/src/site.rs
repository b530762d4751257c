//! The site's own ansible configuration, kept.
//!
//! relflow needs its callback plugin enabled, and the only way to add one
//! without editing the site's `ansible.cfg` is the environment, which
//! *replaces* what the cfg says (`ANSIBLE_CALLBACKS_ENABLED` beats
//! `callbacks_enabled`). So the runner asks ansible what the effective
//! config is, for the run's very environment and working directory
//! (`ansible-config dump` beside `ansible-playbook`, the same install), and
//! sets the environment to the site's callbacks and plugin dirs *plus*
//! relflow's. A site that enables `ansible.builtin.junit` or Fedora's
//! `fedora_messaging_callback` keeps them.
//!
//! The answer is cached per working directory (a runner has one program
//! and one `ANSIBLE_CONFIG`) and asked again when an `ansible.cfg` ansible
//! could read changed on disk.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// A bound on an `ansible-config` that hangs; it normally takes a second.
const DUMP_TIMEOUT: Duration = Duration::from_secs(60);

/// What relflow keeps of the effective config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SiteConfig {
    /// `callbacks_enabled`, in the site's order.
    pub callbacks: Vec<String>,
    /// `callback_plugins`, resolved by ansible (defaults included).
    pub callback_plugins: Vec<String>,
    /// `force_color`: the log relflow stores and reads would be coloured.
    pub force_color: bool,
}

/// Size and mtime of files whose change must make us ask again.
pub(crate) type Stamp = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

/// The cache, one per runner.
#[derive(Debug, Default)]
pub(crate) struct SiteConfigs {
    cache: tokio::sync::Mutex<HashMap<PathBuf, (Stamp, SiteConfig)>>,
}

impl SiteConfigs {
    /// The effective config of a run in `cwd` with `env` (the run's
    /// environment without relflow's callback settings). If ansible cannot
    /// say, a warning says why and only relflow's callback is enabled.
    pub async fn get(&self, playbook_cmd: &Path, env: &BTreeMap<OsString, OsString>, cwd: &Path) -> SiteConfig {
        // One dump at a time: concurrent first runs ask once, not N times.
        let mut cache = self.cache.lock().await;
        let stamp = stat(&config_files(env, cwd));
        if let Some((s, site)) = cache.get(cwd) {
            if *s == stamp {
                return site.clone();
            }
        }
        let site = dump(playbook_cmd, env, cwd).await.unwrap_or_else(|e| {
            tracing::warn!(
                "cannot read the effective ansible config ({e}); runs enable only relflow's callback, \
                 not those the site's ansible.cfg enables"
            );
            SiteConfig::default()
        });
        cache.insert(cwd.to_path_buf(), (stamp, site.clone()));
        site
    }
}

/// Asks `ansible-config dump` of the same install.
async fn dump(playbook_cmd: &Path, env: &BTreeMap<OsString, OsString>, cwd: &Path) -> Result<SiteConfig, String> {
    let path = env.get(OsStr::new("PATH")).cloned().unwrap_or_default();
    let program = crate::runner::sibling_program(playbook_cmd, "ansible-config", &path)
        .ok_or_else(|| format!("no ansible-config beside {}", playbook_cmd.display()))?;
    let mut cmd = tokio::process::Command::new(&program);
    // `-t base`: ansible's own settings, all of them, so the default plugin
    // dirs are kept too (`--only-changed` would leave them out).
    cmd.args(["dump", "--format", "json", "-t", "base"])
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(DUMP_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("{} did not answer in {DUMP_TIMEOUT:?}", program.display()))?
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{} failed: {}", program.display(), err.trim()));
    }
    parse(&out.stdout).map_err(|e| format!("{} printed no config: {e}", program.display()))
}

/// The settings relflow keeps, from the dump's JSON list of
/// `{name, origin, value}`.
fn parse(json: &[u8]) -> Result<SiteConfig, serde_json::Error> {
    let entries: Vec<Value> = serde_json::from_slice(json)?;
    let value = |name: &str| entries.iter().find(|e| e["name"] == name).map(|e| &e["value"]);
    let strings = |name: &str| -> Vec<String> {
        let list = value(name).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        list.iter().filter_map(Value::as_str).map(str::to_owned).collect()
    };
    Ok(SiteConfig {
        callbacks: strings("CALLBACKS_ENABLED"),
        callback_plugins: strings("DEFAULT_CALLBACK_PLUGIN_PATH"),
        force_color: value("ANSIBLE_FORCE_COLOR").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// Every `ansible.cfg` ansible could pick, in its search order.
pub(crate) fn config_files(env: &BTreeMap<OsString, OsString>, cwd: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(cfg) = env.get(OsStr::new("ANSIBLE_CONFIG")) {
        files.push(cwd.join(cfg));
    }
    files.push(cwd.join("ansible.cfg"));
    if let Some(home) = env.get(OsStr::new("HOME")) {
        files.push(Path::new(home).join(".ansible.cfg"));
    }
    files.push(PathBuf::from("/etc/ansible/ansible.cfg"));
    files
}

pub(crate) fn stat(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
            (f.clone(), meta)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_callbacks_plugin_dirs_and_force_color() {
        let dump = br#"[
            {"name": "ANSIBLE_FORCE_COLOR", "origin": "/site/ansible.cfg", "value": true},
            {"name": "CALLBACKS_ENABLED", "origin": "/site/ansible.cfg", "value": ["ansible.builtin.junit", "site"]},
            {"name": "DEFAULT_CALLBACK_PLUGIN_PATH", "origin": "default", "value": ["/site/cb", "/usr/share/cb"]},
            {"GALAXY_SERVERS": {}}
        ]"#;
        let site = parse(dump).unwrap();
        assert_eq!(site.callbacks, ["ansible.builtin.junit", "site"]);
        assert_eq!(site.callback_plugins, ["/site/cb", "/usr/share/cb"]);
        assert!(site.force_color);
        assert_eq!(parse(b"[]").unwrap(), SiteConfig::default());
        assert!(parse(b"ERROR! no").is_err());
    }
}
