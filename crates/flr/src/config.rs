//! flr configuration (`/etc/flr/flr.toml`).
//!
//! The config is the trust anchor when flr runs under sudo: it says which
//! directory trees each command may touch and how to reach koji. So when flr
//! is invoked through sudo, the config file must be owned by root and not
//! writable by group or others, otherwise a caller could point `--config` at a
//! file of their own and widen the roots.
//!
//! Roots can be given per invoking user: `[users.<name>]` takes the keys of
//! `[paths]` and, for that user, replaces `[paths]` as a whole, so two
//! automation users on one host (`relauto-compose`, `relauto-ostree`) get
//! different powers from one file. Under sudo the invoking user is
//! `SUDO_USER`, which sudo itself sets; a setuid flr uses its real uid's
//! name instead, since its caller controls the environment.

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
    /// Roots per invoking user, each replacing `[paths]` for that user.
    #[serde(default)]
    pub users: BTreeMap<String, Paths>,
    /// Set when flr runs through sudo: empty roots then mean "nothing allowed".
    #[serde(skip)]
    pub via_sudo: bool,
    /// Who invoked flr through sudo (see [`invoking_user`]); picks `[users.*]`.
    #[serde(skip)]
    pub caller: Option<String>,
}

/// Whether this process was started through sudo (or is setuid).
pub fn invoked_via_sudo() -> bool {
    // SAFETY: getuid/geteuid have no preconditions and cannot fail.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    std::env::var_os("SUDO_UID").is_some() || uid != euid
}

/// The user who ran flr through sudo: `SUDO_USER` under sudo (sudo sets it
/// itself, whatever the caller's environment said); for a setuid flr the
/// real uid's name, since the caller controls the environment; else `None`.
pub fn invoking_user() -> Option<String> {
    // SAFETY: getuid/geteuid have no preconditions and cannot fail.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    if uid != euid {
        return user_name(uid);
    }
    std::env::var_os("SUDO_UID")?;
    std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty())
}

/// The login name of `uid`, from the password database.
fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: all-zero is a valid passwd (null pointers, zero ids); it is
    // only read after getpwuid_r filled it in.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf.len()` is the
    // buffer's real size; on success `pw.pw_name` points into `buf`, a
    // NUL-terminated string that lives as long as `buf`.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: see above.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    name.to_str().ok().map(str::to_owned)
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
            return Ok(Config { via_sudo, caller: invoking_user(), ..Config::default() });
        }
        if via_sudo {
            check_trusted(&path)?;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read config", &path, e))?;
        let mut cfg = Config::parse(&text).map_err(|e| Error::Invalid(format!("config {}: {e}", path.display())))?;
        cfg.via_sudo = via_sudo;
        cfg.caller = invoking_user();
        Ok(cfg)
    }

    /// Parse config text.
    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The roots for `kind`: the caller's `[users.<name>]` if it has one,
    /// else `[paths]`. Under sudo, an empty list is an error rather than
    /// "anywhere", so a missing config never widens what a caller may do.
    pub fn roots_for(&self, kind: RootKind) -> Result<Vec<PathBuf>> {
        let own = self.caller.as_ref().and_then(|u| Some((u, self.users.get(u)?)));
        let (paths, section) = match own {
            Some((user, paths)) => (paths, format!("[users.{user}]")),
            None => (&self.paths, "[paths]".to_owned()),
        };
        let (roots, key) = match kind {
            RootKind::Compose => (&paths.compose_roots, "compose_roots"),
            RootKind::Checksum => (&paths.checksum_roots, "checksum_roots"),
            RootKind::Sync => (&paths.sync_roots, "sync_roots"),
            RootKind::Ostree => (&paths.ostree_roots, "ostree_roots"),
        };
        if roots.is_empty() && self.via_sudo {
            let who = self.caller.as_deref().map(|u| format!(" for {u}")).unwrap_or_default();
            return Err(Error::Invalid(format!(
                "flr runs via sudo{who} but {section} {key} is not set in the flr config ({DEFAULT_CONFIG} \
                 unless --config); configure the directories this command may touch"
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
    fn a_caller_with_a_users_section_gets_its_roots_and_nothing_else() {
        let text = r#"
[paths]
compose_roots = ["/mnt/koji/compose"]
sync_roots = ["/pub/alt/stage"]
[users.relauto-compose]
checksum_roots = ["/mnt/koji/compose"]
[users.relauto-ostree]
ostree_roots = ["/mnt/koji/ostree"]
"#;
        let as_user = |caller: Option<&str>| Config {
            via_sudo: true,
            caller: caller.map(str::to_owned),
            ..Config::parse(text).unwrap()
        };
        let compose = as_user(Some("relauto-compose"));
        assert_eq!(compose.roots_for(RootKind::Checksum).unwrap(), [PathBuf::from("/mnt/koji/compose")]);
        let e = compose.roots_for(RootKind::Ostree).unwrap_err().to_string();
        assert!(e.contains("for relauto-compose but [users.relauto-compose] ostree_roots is not set"), "{e}");
        assert!(compose.roots_for(RootKind::Sync).is_err(), "[paths] does not leak into a user's own section");
        let ostree = as_user(Some("relauto-ostree"));
        assert_eq!(ostree.roots_for(RootKind::Ostree).unwrap(), [PathBuf::from("/mnt/koji/ostree")]);
        assert!(ostree.roots_for(RootKind::Checksum).is_err());
        // Callers without a section of their own get [paths].
        assert_eq!(as_user(Some("other")).roots_for(RootKind::Sync).unwrap(), [PathBuf::from("/pub/alt/stage")]);
        assert_eq!(as_user(None).roots_for(RootKind::Compose).unwrap(), [PathBuf::from("/mnt/koji/compose")]);
        assert!(Config::parse("[users.x]\nbogus = []").is_err(), "typos in a users section are caught");
    }

    #[test]
    fn empty_roots_refused_under_sudo() {
        let cfg = Config { via_sudo: true, ..Config::default() };
        assert!(cfg.roots_for(RootKind::Sync).is_err());
        let cfg = Config::default();
        assert!(cfg.roots_for(RootKind::Sync).unwrap().is_empty());
    }
}
