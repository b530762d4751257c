//! Signing certificates already chained to the CA, by fingerprint.
//!
//! Fedora signs with a few hundred certificates, each on thousands of
//! messages; parsing one and checking the CA's signature on it costs as much
//! as the message signature itself. Only that is remembered: validity
//! windows, the CA's and CRL's freshness and revocation are checked on every
//! message, against the CRL loaded at that moment, so a CRL reload or a
//! certificate expiring takes effect on the next message.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use crate::pkcs1::PublicKey;
use sha2::{Digest, Sha256};

use crate::x509::{self, Cert};

/// Enough for every signing certificate of a large deployment; a flood of
/// one-off certificates only evicts, it cannot grow memory.
const CAPACITY: usize = 4096;

/// What a message check needs from a certificate the CA is known to have
/// issued.
pub(crate) struct SigningCert {
    /// Kept as a result so a bad key is reported where fedmsg reports it
    /// (after the validity and revocation checks).
    pub key: Result<PublicKey, String>,
    pub subject: String,
    pub cn: Option<String>,
    pub serial: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
}

impl SigningCert {
    pub fn new(parsed: &Cert) -> SigningCert {
        let tbs = &parsed.cert.tbs_certificate;
        SigningCert {
            key: x509::rsa_key(&parsed.cert).and_then(|k| PublicKey::new(&k)),
            subject: tbs.subject.to_string(),
            cn: x509::common_name(&tbs.subject),
            serial: tbs.serial_number.as_bytes().to_vec(),
            not_before: x509::unix(&tbs.validity.not_before),
            not_after: x509::unix(&tbs.validity.not_after),
        }
    }
}

/// SHA-256 of the envelope's `certificate` field as received.
pub(crate) type Fingerprint = [u8; 32];

pub(crate) fn fingerprint(certificate_field: &str) -> Fingerprint {
    Sha256::digest(certificate_field.as_bytes()).into()
}

/// A bounded, least-recently-used set of chain-checked certificates.
pub(crate) struct ChainCache {
    entries: Mutex<lru::LruCache<Fingerprint, Arc<SigningCert>>>,
}

impl ChainCache {
    pub fn new() -> ChainCache {
        let cap = NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN);
        ChainCache { entries: Mutex::new(lru::LruCache::new(cap)) }
    }

    pub fn get(&self, fp: &Fingerprint) -> Option<Arc<SigningCert>> {
        self.lock().get(fp).cloned()
    }

    pub fn put(&self, fp: Fingerprint, cert: Arc<SigningCert>) {
        self.lock().put(fp, cert);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<Fingerprint, Arc<SigningCert>>> {
        // A panic elsewhere while holding it cannot leave the map half
        // updated in a way that matters: every entry is a checked chain.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
