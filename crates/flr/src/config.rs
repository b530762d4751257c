//! flr configuration (`/etc/flr/flr.toml`).
//!
//! The config is the trust anchor when flr runs under sudo: it says which
//! directory trees each command may touch and how to reach koji. So when flr
//! is invoked through sudo, the config file must be owned by root and not
//! writable by group or others, otherwise a caller could point `--config` at a
//! file of their own and widen the roots.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Default config location.
pub const DEFAULT_CONFIG: &str = "/etc/flr/flr.toml";

/// Directory trees each kind of operation may touch.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    /// Where composes are read from (`compose`, `checksum verify`, `sync` source).
    #[serde(default)]
    pub compose_roots: Vec<PathBuf>,
    /// Where `checksum create` may write CHECKSUM files.
    #[serde(default)]
    pub checksum_roots: Vec<PathBuf>,
    /// Where `sync` may write (targets and `latest-*` symlinks).
    #[serde(default)]
    pub sync_roots: Vec<PathBuf>,
    /// OSTree repositories `ostree` may modify.
    #[serde(default)]
    pub ostree_roots: Vec<PathBuf>,
}

/// Absolute paths of the external tools (sudo's secure_path is not relied on).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tools {
    #[serde(default = "default_rsync")]
    pub rsync: PathBuf,
    #[serde(default = "default_ostree")]
    pub ostree: PathBuf,
}

fn default_rsync() -> PathBuf {
    PathBuf::from("/usr/bin/rsync")
}
fn default_ostree() -> PathBuf {
    PathBuf::from("/usr/bin/ostree")
}

impl Default for Tools {
    fn default() -> Self {
        Tools { rsync: default_rsync(), ostree: default_ostree() }
    }
}

/// Compose-related settings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeCfg {
    /// URL prefix -> local path prefix, so a message's `location` URL
    /// (e.g. `https://kojipkgs.fedoraproject.org/compose/...`) maps onto the
    /// local mount. Longest prefix wins.
    #[serde(default)]
    pub url_map: BTreeMap<String, PathBuf>,
}

/// How flr authenticates to the koji hub.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KojiAuth {
    /// Anonymous: read-only calls only.
    #[default]
    None,
    /// TLS client certificate + `sslLogin` (implemented, via rustls).
    Cert,
    /// GSSAPI/Kerberos (`gssapi_login`): documented, not implemented in flr.
    Kerberos,
}

/// Koji hub settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KojiCfg {
    /// Hub XML-RPC URL, e.g. `https://koji.fedoraproject.org/kojihub`.
    pub hub: String,
    #[serde(default)]
    pub auth: KojiAuth,
    /// PEM with the client certificate (and the key, like koji's `cert` option).
    pub cert: Option<PathBuf>,
    /// PEM with the private key, when not in `cert`.
    pub key: Option<PathBuf>,
    /// PEM CA bundle to verify the hub; the webpki roots when unset.
    pub serverca: Option<PathBuf>,
    /// Kerberos principal and keytab (only used to explain what to configure).
    pub principal: Option<String>,
    pub keytab: Option<PathBuf>,
}

/// The whole configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub paths: Paths,
    #[serde(default)]
    pub tools: Tools,
    #[serde(default)]
    pub compose: ComposeCfg,
    pub koji: Option<KojiCfg>,
    /// Set when flr runs through sudo: empty roots then mean "nothing allowed".
    #[serde(skip)]
    pub via_sudo: bool,
}

/// Whether this process was started through sudo (or is setuid).
pub fn invoked_via_sudo() -> bool {
    // SAFETY: getuid/geteuid have no preconditions and cannot fail.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    std::env::var_os("SUDO_UID").is_some() || uid != euid
}

/// Which set of roots an operation needs.
#[derive(Debug, Clone, Copy)]
pub enum RootKind {
    Compose,
    Checksum,
    Sync,
    Ostree,
}

impl Config {
    /// Load the config. `explicit` is `--config`; otherwise `FLR_CONFIG`,
    /// then [`DEFAULT_CONFIG`] (which may be absent: empty config).
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let via_sudo = invoked_via_sudo();
        let env = std::env::var_os("FLR_CONFIG").map(PathBuf::from);
        let (path, required) = match (explicit, env) {
            (Some(p), _) => (p.to_path_buf(), true),
            (None, Some(p)) => (p, true),
            (None, None) => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        if !path.exists() {
            if required {
                return Err(Error::Invalid(format!("config file {} does not exist", path.display())));
            }
            return Ok(Config { via_sudo, ..Config::default() });
        }
        if via_sudo {
            check_trusted(&path)?;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read config", &path, e))?;
        let mut cfg = Config::parse(&text).map_err(|e| Error::Invalid(format!("config {}: {e}", path.display())))?;
        cfg.via_sudo = via_sudo;
        Ok(cfg)
    }

    /// Parse config text.
    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The roots for `kind`. Under sudo, an empty list is an error rather
    /// than "anywhere", so a missing config never widens what a caller may do.
    pub fn roots_for(&self, kind: RootKind) -> Result<Vec<PathBuf>> {
        let (roots, key) = match kind {
            RootKind::Compose => (&self.paths.compose_roots, "compose_roots"),
            RootKind::Checksum => (&self.paths.checksum_roots, "checksum_roots"),
            RootKind::Sync => (&self.paths.sync_roots, "sync_roots"),
            RootKind::Ostree => (&self.paths.ostree_roots, "ostree_roots"),
        };
        if roots.is_empty() && self.via_sudo {
            return Err(Error::Invalid(format!(
                "flr runs via sudo but [paths] {key} is not set in {DEFAULT_CONFIG}; \
                 configure the directories this command may touch"
            )));
        }
        Ok(roots.clone())
    }

    /// Map a compose location (local path or URL) to a local path.
    pub fn resolve_location(&self, location: &str) -> Result<PathBuf> {
        if !(location.starts_with("http://") || location.starts_with("https://")) {
            return Ok(PathBuf::from(location));
        }
        let best = self
            .compose
            .url_map
            .iter()
            .filter(|(prefix, _)| location.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len());
        match best {
            Some((prefix, local)) => {
                let rest = location[prefix.len()..].trim_start_matches('/');
                crate::validate::relative_inside("compose location", rest.trim_end_matches('/'))?;
                Ok(local.join(rest))
            }
            None => Err(Error::Invalid(format!(
                "compose location {location} is a URL with no [compose.url_map] entry; \
                 flr reads composes from the local filesystem, map the URL prefix to its mount point"
            ))),
        }
    }
}

/// Refuse a config that a non-root user could have written.
fn check_trusted(path: &Path) -> Result<()> {
    let md = std::fs::metadata(path).map_err(|e| Error::io("stat config", path, e))?;
    if md.uid() != 0 || md.mode() & 0o022 != 0 {
        return Err(Error::Invalid(format!(
            "config {} must be owned by root and not writable by group/others when flr runs via sudo",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_config() {
        let cfg = Config::parse(
            r#"
[paths]
compose_roots = ["/mnt/koji/compose"]
sync_roots = ["/pub/alt/stage"]
[tools]
rsync = "/usr/bin/rsync"
[compose.url_map]
"https://kojipkgs.fedoraproject.org/compose/" = "/mnt/koji/compose/"
[koji]
hub = "https://koji.fedoraproject.org/kojihub"
auth = "cert"
cert = "/etc/flr/koji.pem"
"#,
        )
        .unwrap();
        assert_eq!(cfg.koji.as_ref().unwrap().auth, KojiAuth::Cert);
        assert_eq!(cfg.tools.ostree, PathBuf::from("/usr/bin/ostree"));
        assert_eq!(
            cfg.resolve_location("https://kojipkgs.fedoraproject.org/compose/39/Fedora-39-20231101.0/compose").unwrap(),
            PathBuf::from("/mnt/koji/compose/39/Fedora-39-20231101.0/compose")
        );
        assert!(cfg.resolve_location("https://kojipkgs.fedoraproject.org/compose/../../etc").is_err());
        assert!(cfg.resolve_location("https://example.org/x").is_err());
        assert!(Config::parse("[paths]\nbogus = 1").is_err());
    }

    #[test]
    fn empty_roots_refused_under_sudo() {
        let cfg = Config { via_sudo: true, ..Config::default() };
        assert!(cfg.roots_for(RootKind::Sync).is_err());
        let cfg = Config::default();
        assert!(cfg.roots_for(RootKind::Sync).unwrap().is_empty());
    }
}
