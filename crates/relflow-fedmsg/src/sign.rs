//! Signing envelopes the way `fedmsg.crypto.x509_ng.sign` does, so any fedmsg
//! consumer (or relflow) accepts what a republishing relflow sends:
//! `crypto` is set to `"x509"` *before* signing (so it is covered), the
//! signature is RSA PKCS#1 v1.5 + SHA-1 over the canonical JSON, and both
//! `signature` and the certificate (its PEM re-encoded, then base64'd) are
//! wrapped at 76 columns with a trailing newline, as M2Crypto did.
//! PKCS#1 v1.5 is deterministic, so the same message and key always give the
//! same signature (the test vectors rely on it).

use std::path::Path;

use der::{pem::LineEnding, EncodePem};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha1::{Digest, Sha1};

use crate::canonical::{self, PyJson, PyStr};
use crate::config::SignConfig;
use crate::verify::{read, signed_bytes, LoadError};
use crate::x509;

/// Why signing could not be set up or done.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("sign.cert: {0}")]
    Cert(String),
    #[error("sign.key: {0}")]
    Key(String),
    #[error("sign.key does not belong to sign.cert (public keys differ)")]
    KeyMismatch,
    #[error("cannot sign: {0}")]
    Message(String),
}

/// Signs envelopes with one certificate and its private key.
pub struct Signer {
    key: RsaPrivateKey,
    cert_b64: String,
    common_name: Option<String>,
}

impl Signer {
    /// From PEM data: a certificate (text before the PEM block is ignored) and
    /// an RSA private key in PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`) form. The key must match the certificate.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, SignError> {
        let cert = x509::cert_from_file_pem(cert_pem).map_err(SignError::Cert)?.cert;
        let key = if let Some(block) = x509::first_pem_block(key_pem, "PRIVATE KEY") {
            RsaPrivateKey::from_pkcs8_pem(std::str::from_utf8(block).unwrap_or_default())
                .map_err(|e| SignError::Key(e.to_string()))?
        } else if let Some(block) = x509::first_pem_block(key_pem, "RSA PRIVATE KEY") {
            RsaPrivateKey::from_pkcs1_pem(std::str::from_utf8(block).unwrap_or_default())
                .map_err(|e| SignError::Key(e.to_string()))?
        } else {
            return Err(SignError::Key("no 'PRIVATE KEY' or 'RSA PRIVATE KEY' PEM block".into()));
        };
        let cert_key = x509::rsa_key(&cert).map_err(SignError::Cert)?;
        if cert_key.n() != key.n() || cert_key.e() != key.e() {
            return Err(SignError::KeyMismatch);
        }
        // Like fedmsg (`cert.public_bytes(PEM)`): only the PEM block, 64-column, LF.
        let pem = cert.to_pem(LineEnding::LF).map_err(|e| SignError::Cert(e.to_string()))?;
        Ok(Signer {
            key,
            cert_b64: x509::b64encode_wrapped(pem.as_bytes()),
            common_name: x509::common_name(&cert.tbs_certificate.subject),
        })
    }

    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, SignError> {
        Signer::from_pem(&read(cert)?, &read(key)?)
    }

    pub fn from_config(cfg: &SignConfig) -> Result<Self, SignError> {
        Signer::from_files(&cfg.cert, &cfg.key)
    }

    /// The CN receivers will check against their routing_policy.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The raw RSA PKCS#1 v1.5 SHA-1 signature of `data`.
    pub fn signature_of(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        self.key.sign(Pkcs1v15Sign::new::<Sha1>(), &Sha1::digest(data)).map_err(|e| SignError::Message(e.to_string()))
    }

    /// Signs an envelope in place: sets `crypto`, replaces any previous
    /// `signature`/`certificate`.
    pub fn sign(&self, envelope: &mut PyJson) -> Result<(), SignError> {
        if !matches!(envelope, PyJson::Object(_)) {
            return Err(SignError::Message("the message is not a JSON object".into()));
        }
        envelope.insert("crypto", PyJson::Str(PyStr::from("x509")));
        let sig = self.signature_of(signed_bytes(envelope).as_bytes())?;
        envelope.insert("signature", PyJson::Str(x509::b64encode_wrapped(&sig).as_str().into()));
        envelope.insert("certificate", PyJson::Str(self.cert_b64.as_str().into()));
        Ok(())
    }

    /// Signs raw envelope bytes and returns the signed envelope as canonical
    /// JSON (what fedmsg itself puts on the wire).
    pub fn sign_bytes(&self, envelope: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut v = canonical::parse(envelope).map_err(|e| SignError::Message(e.to_string()))?;
        self.sign(&mut v)?;
        Ok(canonical::to_canonical(&v).into_bytes())
    }

    /// Signs a `serde_json` envelope, returning the signed copy.
    pub fn sign_value(&self, envelope: &serde_json::Value) -> Result<serde_json::Value, SignError> {
        let mut v = PyJson::from_serde(envelope);
        self.sign(&mut v)?;
        Ok(v.to_serde())
    }
}
