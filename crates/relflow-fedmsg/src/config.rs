//! The `[fedmsg]` section of `relflow.toml`.
//!
//! ```toml
//! [fedmsg]
//! ca_cert = "/etc/pki/fedmsg/ca.crt"
//! crl = "/etc/pki/fedmsg/crl.pem"          # optional
//! routing_nitpicky = false
//! validate_at_message_time = false         # true to accept archived messages
//! [fedmsg.routing_policy]
//! "org.fedoraproject.prod.buildsys.tag" = ["koji-koji01.phx2.fedoraproject.org"]
//! [fedmsg.sign]                            # optional: to republish signed
//! cert = "/etc/pki/fedmsg/relflow.crt"
//! key = "/etc/pki/fedmsg/relflow.key"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// fedmsg signature settings (names follow fedmsg's own config keys where
/// one exists, so a fedmsg.d/ssl.py translates directly).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FedmsgConfig {
    /// PEM file of the CA that must have issued every signing certificate.
    pub ca_cert: PathBuf,
    /// PEM CRL issued by that CA; when set, revoked certificates are refused
    /// and a stale CRL (past its nextUpdate) fails verification.
    #[serde(default)]
    pub crl: Option<PathBuf>,
    /// Topic -> certificate CNs allowed to sign it.
    #[serde(default)]
    pub routing_policy: BTreeMap<String, Vec<String>>,
    /// Refuse topics that have no routing_policy entry.
    #[serde(default)]
    pub routing_nitpicky: bool,
    /// Check the signing certificate's validity at the message's own
    /// `timestamp` instead of now, for archived messages whose certificates
    /// have since expired. The CA and CRL are still checked against now, and
    /// a revoked certificate is refused whatever the message claims.
    #[serde(default)]
    pub validate_at_message_time: bool,
    /// Certificate and key to sign with, for a relflow that republishes.
    #[serde(default)]
    pub sign: Option<SignConfig>,
}

/// The key pair relflow signs with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl FedmsgConfig {
    /// Makes relative paths relative to `base` (the directory of the config
    /// file), so a config works wherever relflow is started from.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.ca_cert);
        if let Some(c) = &mut self.crl {
            fix(c);
        }
        if let Some(s) = &mut self.sign {
            fix(&mut s.cert);
            fix(&mut s.key);
        }
    }
}
