//! Verifying fedmsg X.509 signatures, with fedmsg's checks and in its order:
//!
//! 1. the envelope carries `signature` and `certificate` (base64; the
//!    certificate is a base64'd PEM document);
//! 2. the certificate chains to the configured CA (issuer name + RSA
//!    signature; both certificates inside their validity periods);
//! 3. when a CRL is configured, neither certificate is revoked and the CRL
//!    is current (OpenSSL's `CRL_CHECK | CRL_CHECK_ALL`, as fedmsg sets);
//! 4. RSA PKCS#1 v1.5 + SHA-1 over the canonical JSON of the envelope minus
//!    `signature` and `certificate` verifies with the certificate's key;
//! 5. the certificate's first CN may sign the topic by `routing_policy`.
//!
//! Validating at message time: Fedora's historical certificates have expired,
//! so an archive replay would fail step 2. With `validate_at_message_time` the
//! *signing* certificate is checked at the message's `timestamp` (which the
//! signature covers). The CA stays checked against now: it is local trust
//! configuration (Fedora re-issued its CA in 2022 with the same key, so the
//! current CA file legitimately post-dates 2017 messages). The CRL is also
//! checked against now and a listed serial is refused whatever the message's
//! time, because whoever holds a revoked key can write any timestamp.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rsa::RsaPublicKey;
use sha1::{Digest, Sha1};
use x509_cert::Certificate;

use crate::canonical::{self, PyJson};
use crate::chains::{self, ChainCache, SigningCert};
use crate::config::FedmsgConfig;
use crate::policy::{PolicyError, RoutingDecision, RoutingPolicy};
use crate::x509::{self, fmt_time};

/// Who signed a message that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerInfo {
    /// The certificate's first CN, the name `routing_policy` uses.
    pub common_name: String,
    /// The full subject, RFC 4514 style.
    pub subject: String,
    /// Serial number, uppercase hex.
    pub serial: String,
    pub topic: Option<String>,
    /// The Unix time the signing certificate was checked at (now, or the
    /// message's timestamp when validating at message time).
    pub checked_at: i64,
    pub routing: RoutingDecision,
}

/// Why a message failed verification. Each variant names the check that
/// failed; `Display` says what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a fedmsg envelope: {0}")]
    Malformed(String),
    #[error("unsigned message: no 'signature'/'certificate' fields (missing '{missing}')")]
    Unsigned { missing: &'static str },
    #[error("crypto backend '{0}' is not supported (only 'x509' signatures can be verified)")]
    UnsupportedCrypto(String),
    #[error("the '{field}' field cannot be decoded: {detail}")]
    BadEncoding { field: &'static str, detail: String },
    #[error("not signed by the configured CA: certificate '{subject}' {detail} (check ca_cert)")]
    NotSignedByCa { subject: String, detail: String },
    #[error("the configured CA certificate '{ca}' expired at {not_after} (checked at {at}); replace ca_cert with the current CA")]
    CaExpired { ca: String, not_after: String, at: String },
    #[error("the configured CA certificate '{ca}' is not valid before {not_before} (checked at {at}); check the clock or ca_cert")]
    CaNotYetValid { ca: String, not_before: String, at: String },
    #[error("certificate CN={cn} serial {serial} expired at {not_after} (checked at {at}){hint}")]
    CertExpired { cn: String, serial: String, not_after: String, at: String, hint: &'static str },
    #[error("certificate CN={cn} serial {serial} is not valid before {not_before} (checked at {at})")]
    CertNotYetValid { cn: String, serial: String, not_before: String, at: String },
    #[error("certificate CN={cn} serial {serial} is revoked by the CRL (revoked at {revoked_at})")]
    Revoked { cn: String, serial: String, revoked_at: String },
    #[error("the configured CRL expired at {next_update} (checked at {at}); fetch a fresh CRL")]
    CrlExpired { next_update: String, at: String },
    #[error("the configured CRL is not valid before {this_update} (checked at {at}); check the clock")]
    CrlNotYetValid { this_update: String, at: String },
    #[error("validate_at_message_time is on but the message has no numeric 'timestamp'")]
    NoTimestamp,
    #[error("signature does not match the message (tampered, or canonical form differs)")]
    BadSignature,
    #[error("certificate '{subject}' has no CN, so routing_policy cannot be applied")]
    NoCommonName { subject: String },
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl VerifyError {
    /// A short stable name for the failed check (for metrics, logs and
    /// dead-letter reasons).
    pub fn kind(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed",
            VerifyError::Unsigned { .. } => "unsigned",
            VerifyError::UnsupportedCrypto(_) => "unsupported_crypto",
            VerifyError::BadEncoding { .. } => "bad_encoding",
            VerifyError::NotSignedByCa { .. } => "untrusted_issuer",
            VerifyError::CaExpired { .. } | VerifyError::CaNotYetValid { .. } => "ca_not_valid",
            VerifyError::CertExpired { .. } => "cert_expired",
            VerifyError::CertNotYetValid { .. } => "cert_not_yet_valid",
            VerifyError::Revoked { .. } => "revoked",
            VerifyError::CrlExpired { .. } | VerifyError::CrlNotYetValid { .. } => "crl_not_valid",
            VerifyError::NoTimestamp => "no_timestamp",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::NoCommonName { .. } => "no_common_name",
            VerifyError::Policy(PolicyError::SignerNotAllowed { .. }) => "policy_denied",
            VerifyError::Policy(PolicyError::TopicNotListed { .. }) => "policy_unlisted_topic",
        }
    }
}

/// Problems with the configured CA, CRL or signing key (found at start-up).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("ca_cert: {0}")]
    Ca(String),
    #[error("crl: {0}")]
    Crl(String),
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Io { path: path.display().to_string(), source })
}

struct Crl {
    this_update: i64,
    next_update: Option<i64>,
    /// (serial DER bytes, revocation time)
    revoked: Vec<(Vec<u8>, i64)>,
}

/// Verifies fedmsg envelopes against one CA, an optional CRL and a routing
/// policy. Cheap to share (`&self` only); build it once at start-up.
///
/// Signing certificates that chained to the CA are remembered by
/// fingerprint (chains.rs), so a message from a known signer costs one
/// signature check; validity and revocation are still checked every time.
pub struct Verifier {
    ca: Certificate,
    ca_key: RsaPublicKey,
    ca_name: String,
    /// Replaced whole by [`Verifier::reload_crl`].
    crl: RwLock<Option<Arc<Crl>>>,
    chains: ChainCache,
    policy: RoutingPolicy,
    at_message_time: bool,
}

impl Verifier {
    /// Builds a verifier from PEM data. The CRL must be issued and signed by
    /// the CA; its freshness is checked at each verification.
    pub fn new(ca_pem: &[u8], crl_pem: Option<&[u8]>, policy: RoutingPolicy) -> Result<Self, LoadError> {
        let ca = x509::cert_from_file_pem(ca_pem).map_err(LoadError::Ca)?.cert;
        let ca_key = x509::rsa_key(&ca).map_err(LoadError::Ca)?;
        if !x509::may_be_ca(&ca) {
            return Err(LoadError::Ca("the certificate is not a CA (basicConstraints cA=false)".into()));
        }
        let ca_name = ca.tbs_certificate.subject.to_string();
        let crl = crl_pem.map(|pem| load_crl(pem, &ca, &ca_key)).transpose()?.map(Arc::new);
        let (crl, chains) = (RwLock::new(crl), ChainCache::new());
        Ok(Verifier { ca, ca_key, ca_name, crl, chains, policy, at_message_time: false })
    }

    /// Replaces the CRL (`None`: no CRL) for every later verification; on
    /// error the old one stays. Remembered chains are dropped too, so
    /// nothing checked under the old CRL outlives it.
    pub fn reload_crl(&self, crl_pem: Option<&[u8]>) -> Result<(), LoadError> {
        let crl = crl_pem.map(|pem| load_crl(pem, &self.ca, &self.ca_key)).transpose()?.map(Arc::new);
        *self.crl.write().unwrap_or_else(|p| p.into_inner()) = crl;
        self.chains.clear();
        Ok(())
    }

    /// How many signing certificates are remembered as chained to the CA.
    pub fn cached_chains(&self) -> usize {
        self.chains.len()
    }

    fn current_crl(&self) -> Option<Arc<Crl>> {
        self.crl.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Check the signing certificate at the message's timestamp (see the
    /// module docs for exactly what this relaxes).
    pub fn validate_at_message_time(mut self, yes: bool) -> Self {
        self.at_message_time = yes;
        self
    }

    /// Builds a verifier from the `[fedmsg]` config, reading its files.
    pub fn from_config(cfg: &FedmsgConfig) -> Result<Self, LoadError> {
        let ca = read(&cfg.ca_cert)?;
        let crl = cfg.crl.as_deref().map(read).transpose()?;
        let policy = RoutingPolicy::new(cfg.routing_policy.clone(), cfg.routing_nitpicky);
        Ok(Verifier::new(&ca, crl.as_deref(), policy)?.validate_at_message_time(cfg.validate_at_message_time))
    }

    /// Verifies a raw envelope (JSON bytes). Prefer this over
    /// [`Verifier::verify_value`]: it sees numbers exactly as written.
    pub fn verify(&self, envelope: &[u8]) -> Result<SignerInfo, VerifyError> {
        self.verify_at(envelope, unix_now())
    }

    /// Verifies an envelope already decoded by `serde_json` (exact except for
    /// integers beyond 64 bits, which `serde_json` has turned into floats).
    pub fn verify_value(&self, envelope: &serde_json::Value) -> Result<SignerInfo, VerifyError> {
        self.verify_json_at(&PyJson::from_serde(envelope), unix_now())
    }

    /// [`Verifier::verify`] with an explicit "now" (Unix seconds).
    pub fn verify_at(&self, envelope: &[u8], now: i64) -> Result<SignerInfo, VerifyError> {
        let v = canonical::parse(envelope).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        self.verify_json_at(&v, now)
    }

    /// Verifies a decoded envelope with an explicit "now" (Unix seconds).
    pub fn verify_json_at(&self, envelope: &PyJson, now: i64) -> Result<SignerInfo, VerifyError> {
        if !matches!(envelope, PyJson::Object(_)) {
            return Err(VerifyError::Malformed("the message is not a JSON object".into()));
        }
        let field = |name: &'static str| -> Result<String, VerifyError> {
            match envelope.get(name) {
                None | Some(PyJson::Null) => Err(VerifyError::Unsigned { missing: name }),
                Some(v) => v.as_string().ok_or(VerifyError::BadEncoding { field: name, detail: "not a string".into() }),
            }
        };
        let sig_b64 = field("signature")?;
        let cert_b64 = field("certificate")?;
        match envelope.get("crypto") {
            None | Some(PyJson::Null) => {}
            Some(PyJson::Str(s)) if s.eq_str("x509") => {}
            Some(other) => return Err(VerifyError::UnsupportedCrypto(canonical::to_canonical(other))),
        }
        let signature =
            x509::b64decode(&sig_b64).map_err(|detail| VerifyError::BadEncoding { field: "signature", detail })?;
        let fingerprint = chains::fingerprint(&cert_b64);
        let known = match self.chains.get(&fingerprint) {
            Some(cert) => Known::Chained(cert),
            None => Known::New(Box::new(parse_cert(&cert_b64)?)),
        };
        let (subject, cn, serial) = known.names();
        let cn_or_subject = || cn.clone().unwrap_or_else(|| subject.clone());

        // Which time the signing certificate must be valid at.
        let checked_at = if self.at_message_time {
            match envelope.get("timestamp").and_then(PyJson::as_f64) {
                Some(t) if t.is_finite() => t.floor() as i64,
                _ => return Err(VerifyError::NoTimestamp),
            }
        } else {
            now
        };

        // 2. Chain to the CA. The configured CA and CRL must be current first.
        let crl = self.current_crl();
        self.check_ca_and_crl_validity(crl.as_deref(), now)?;
        let cert = match known {
            Known::Chained(cert) => cert,
            Known::New(parsed) => {
                x509::check_issued_by(&parsed, &self.ca, &self.ca_key)
                    .map_err(|detail| VerifyError::NotSignedByCa { subject: subject.clone(), detail })?;
                let cert = Arc::new(SigningCert::new(&parsed));
                self.chains.put(fingerprint, Arc::clone(&cert));
                cert
            }
        };
        let (nb, na) = (cert.not_before, cert.not_after);
        if checked_at < nb {
            return Err(VerifyError::CertNotYetValid {
                cn: cn_or_subject(),
                serial,
                not_before: fmt_time(nb),
                at: fmt_time(checked_at),
            });
        }
        if checked_at > na {
            let hint =
                if self.at_message_time { "" } else { " (use validate_at_message_time for historical messages)" };
            return Err(VerifyError::CertExpired {
                cn: cn_or_subject(),
                serial,
                not_after: fmt_time(na),
                at: fmt_time(checked_at),
                hint,
            });
        }

        // 3. Revocation.
        if let Some(crl) = &crl {
            let ca_serial = self.ca.tbs_certificate.serial_number.as_bytes();
            for (s, when) in &crl.revoked {
                if *s == cert.serial {
                    return Err(VerifyError::Revoked { cn: cn_or_subject(), serial, revoked_at: fmt_time(*when) });
                }
                if s.as_slice() == ca_serial {
                    return Err(VerifyError::Revoked {
                        cn: self.ca_name.clone(),
                        serial: x509::serial_hex(ca_serial),
                        revoked_at: fmt_time(*when),
                    });
                }
            }
        }

        // 4. The message signature.
        let key = cert
            .key
            .as_ref()
            .map_err(|detail| VerifyError::BadEncoding { field: "certificate", detail: detail.clone() })?;
        let digest: [u8; 20] = Sha1::digest(signed_bytes(envelope).as_bytes()).into();
        if !key.verify_sha1(&digest, &signature) {
            return Err(VerifyError::BadSignature);
        }

        // 5. Routing policy.
        let cn = cn.ok_or(VerifyError::NoCommonName { subject: subject.clone() })?;
        let topic = envelope.get("topic").and_then(PyJson::as_string);
        let routing = self.policy.check(topic.as_deref(), &cn)?;
        Ok(SignerInfo { common_name: cn, subject, serial, topic, checked_at, routing })
    }

    fn check_ca_and_crl_validity(&self, crl: Option<&Crl>, now: i64) -> Result<(), VerifyError> {
        if let Some(crl) = crl {
            if now < crl.this_update {
                return Err(VerifyError::CrlNotYetValid { this_update: fmt_time(crl.this_update), at: fmt_time(now) });
            }
            if let Some(next) = crl.next_update.filter(|n| now > *n) {
                return Err(VerifyError::CrlExpired { next_update: fmt_time(next), at: fmt_time(now) });
            }
        }
        let v = &self.ca.tbs_certificate.validity;
        let (nb, na) = (x509::unix(&v.not_before), x509::unix(&v.not_after));
        if now < nb {
            return Err(VerifyError::CaNotYetValid {
                ca: self.ca_name.clone(),
                not_before: fmt_time(nb),
                at: fmt_time(now),
            });
        }
        if now > na {
            return Err(VerifyError::CaExpired {
                ca: self.ca_name.clone(),
                not_after: fmt_time(na),
                at: fmt_time(now),
            });
        }
        Ok(())
    }
}

/// The signing certificate of one message: remembered, or parsed just now
/// and not yet checked against the CA.
enum Known {
    Chained(Arc<SigningCert>),
    New(Box<x509::Cert>),
}

impl Known {
    /// Subject, first CN and serial (hex), for results and errors.
    fn names(&self) -> (String, Option<String>, String) {
        match self {
            Known::Chained(c) => (c.subject.clone(), c.cn.clone(), x509::serial_hex(&c.serial)),
            Known::New(p) => {
                let tbs = &p.cert.tbs_certificate;
                (
                    tbs.subject.to_string(),
                    x509::common_name(&tbs.subject),
                    x509::serial_hex(tbs.serial_number.as_bytes()),
                )
            }
        }
    }
}

fn parse_cert(cert_b64: &str) -> Result<x509::Cert, VerifyError> {
    let bad = |detail| VerifyError::BadEncoding { field: "certificate", detail };
    let pem = x509::b64decode(cert_b64).map_err(bad)?;
    x509::cert_from_strict_pem(&pem).map_err(bad)
}

/// A CRL the CA issued and signed.
fn load_crl(pem: &[u8], ca: &Certificate, ca_key: &RsaPublicKey) -> Result<Crl, LoadError> {
    let crl = x509::crl_from_file_pem(pem).map_err(LoadError::Crl)?;
    if crl.issuer != ca.tbs_certificate.subject {
        let ca_name = ca.tbs_certificate.subject.to_string();
        return Err(LoadError::Crl(format!("issued by '{}', not by the CA '{ca_name}'", crl.issuer)));
    }
    x509::check_signed(&crl.tbs_der, &crl.signature_algorithm, &crl.signature, ca_key)
        .map_err(|e| LoadError::Crl(format!("CRL signature: {e}")))?;
    Ok(Crl {
        this_update: x509::unix(&crl.this_update),
        next_update: crl.next_update.as_ref().map(x509::unix),
        revoked: crl.revoked.iter().map(|(s, t)| (s.clone(), x509::unix(t))).collect(),
    })
}

/// The exact text fedmsg signs: the canonical JSON of the envelope without
/// its `signature` and `certificate` fields (`fedmsg.crypto.strip_credentials`).
pub fn signed_bytes(envelope: &PyJson) -> String {
    match envelope {
        PyJson::Object(members) => {
            let kept =
                members.iter().filter(|(k, _)| !k.eq_str("signature") && !k.eq_str("certificate")).cloned().collect();
            canonical::to_canonical(&PyJson::Object(kept))
        }
        other => canonical::to_canonical(other),
    }
}

/// Undoes what datagrepper/datanommer do to stored messages, as fedmsg's
/// `fix_datagrepper_message` does, so archived messages can verify: when both
/// `source_name` and `source_version` are present, drop them, drop an empty
/// `headers`, and truncate a float `timestamp` to an integer. Returns whether
/// the message was changed. (Like fedmsg, this guesses: a message really
/// signed with empty headers will then fail.)
pub fn fix_datagrepper_message(envelope: &mut PyJson) -> bool {
    if envelope.get("source_name").is_none() || envelope.get("source_version").is_none() {
        return false;
    }
    envelope.remove("source_name");
    envelope.remove("source_version");
    let empty_headers = match envelope.get("headers") {
        Some(PyJson::Null | PyJson::Bool(false)) => true,
        Some(PyJson::Object(m)) => m.is_empty(),
        Some(PyJson::Array(a)) => a.is_empty(),
        Some(PyJson::Str(s)) => s.0.is_empty(),
        Some(PyJson::Int(i)) => i == "0",
        Some(PyJson::Float(f)) => *f == 0.0,
        _ => false,
    };
    if empty_headers {
        envelope.remove("headers");
    }
    if let Some(PyJson::Float(f)) = envelope.get("timestamp") {
        if f.is_finite() {
            let t = format!("{}", f.trunc() as i64);
            envelope.insert("timestamp", PyJson::Int(t));
        }
    }
    true
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
