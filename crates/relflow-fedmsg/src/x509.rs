//! Small X.509 helpers over RustCrypto's `x509-cert`: PEM/base64 decoding,
//! RSA PKCS#1 v1.5 signature checks on certificates and CRLs, names, times.
//!
//! We deliberately support only what fedmsg deployments use: RSA keys, with
//! SHA-1 (all 2012-era Fedora certificates) or SHA-2 signatures.

use der::asn1::{BitString, ObjectIdentifier};
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha1::{Digest, Sha1};
use sha2::{Sha256, Sha384, Sha512};
use x509_cert::crl::RevokedCert;
use x509_cert::name::Name;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::time::Time;
use x509_cert::Certificate;

const SHA1_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");

/// Decodes base64 the way fedmsg writes it (76-column lines, trailing
/// newline): ASCII whitespace is ignored, everything else must be canonical
/// base64 so that any altered character is noticed.
pub(crate) fn b64decode(s: &str) -> Result<Vec<u8>, String> {
    use base64ct::Encoding;
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64ct::Base64::decode_vec(&compact).map_err(|e| format!("bad base64: {e}"))
}

/// Encodes like fedmsg's `_prep_crypto_msg` (after M2Crypto): base64 in
/// 76-character lines, each ending in a newline.
pub(crate) fn b64encode_wrapped(data: &[u8]) -> String {
    use base64ct::Encoding;
    let flat = base64ct::Base64::encode_string(data);
    let mut out = String::with_capacity(flat.len() + flat.len() / 76 + 1);
    for chunk in flat.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// A parsed certificate plus the exact signed bytes (its TBSCertificate as
/// received), so signature checks never depend on re-encoding.
pub(crate) struct Cert {
    pub cert: Certificate,
    pub tbs_raw: Vec<u8>,
}

/// A certificate from a PEM document that is exactly one certificate (what a
/// fedmsg envelope carries: no text before or after, so no byte is ignored).
pub(crate) fn cert_from_strict_pem(pem: &[u8]) -> Result<Cert, String> {
    let (label, der) = der::pem::decode_vec(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    if label != "CERTIFICATE" {
        return Err(format!("PEM label is '{label}', expected 'CERTIFICATE'"));
    }
    cert_from_der(&der).map_err(|e| format!("not an X.509 certificate: {e}"))
}

fn cert_from_der(data: &[u8]) -> der::Result<Cert> {
    let mut outer = SliceReader::new(data)?;
    let tbs_raw = outer.sequence(|r| {
        let tbs = r.tlv_bytes()?.to_vec();
        let _alg: AlgorithmIdentifierOwned = r.decode()?;
        let _sig: BitString = r.decode()?;
        Ok(tbs)
    })?;
    outer.finish(())?;
    match Certificate::from_der(data) {
        Ok(cert) => Ok(Cert { cert, tbs_raw }),
        Err(e) => {
            // OpenSSL accepts an out-of-range version number (fedmsg's test
            // expired_ca.crt says version 4); `x509-cert` does not. Read such
            // a certificate as v3; its signature is still checked over the
            // original bytes.
            let at = data.windows(5).take(16).position(|w| w[..4] == [0xa0, 0x03, 0x02, 0x01] && w[4] > 2).ok_or(e)?;
            let mut patched = data.to_vec();
            patched[at + 4] = 2;
            Ok(Cert { cert: Certificate::from_der(&patched)?, tbs_raw })
        }
    }
}

/// The first PEM block labelled `label` in a file, tolerating the text dumps
/// that often precede it in `.crt` files (as OpenSSL does).
pub(crate) fn first_pem_block<'a>(data: &'a [u8], label: &str) -> Option<&'a [u8]> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = find(data, begin.as_bytes())?;
    let stop = start + find(&data[start..], end.as_bytes())? + end.len();
    Some(&data[start..stop])
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn cert_from_file_pem(data: &[u8]) -> Result<Cert, String> {
    let block = first_pem_block(data, "CERTIFICATE").ok_or("no '-----BEGIN CERTIFICATE-----' block")?;
    cert_from_strict_pem(block)
}

/// The parts of a CRL we use. Parsed by hand because `x509-cert` 0.2 requires
/// the `version` field, which v1 CRLs (like fedmsg's test `crl.pem`) omit.
pub(crate) struct ParsedCrl {
    pub tbs_der: Vec<u8>,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub signature: BitString,
    pub issuer: Name,
    pub this_update: Time,
    pub next_update: Option<Time>,
    /// (serial DER contents, revocation time)
    pub revoked: Vec<(Vec<u8>, Time)>,
}

pub(crate) fn crl_from_file_pem(data: &[u8]) -> Result<ParsedCrl, String> {
    let block = first_pem_block(data, "X509 CRL").ok_or("no '-----BEGIN X509 CRL-----' block")?;
    let (label, der) = der::pem::decode_vec(block).map_err(|e| format!("not a PEM CRL: {e}"))?;
    if label != "X509 CRL" {
        return Err(format!("PEM label is '{label}', expected 'X509 CRL'"));
    }
    parse_crl(&der).map_err(|e| format!("not a CRL: {e}"))
}

fn parse_crl(data: &[u8]) -> der::Result<ParsedCrl> {
    let mut outer = SliceReader::new(data)?;
    let (tbs_der, signature_algorithm, signature) = outer.sequence(|r| {
        let tbs = r.tlv_bytes()?.to_vec();
        Ok((tbs, AlgorithmIdentifierOwned::decode(r)?, BitString::decode(r)?))
    })?;
    outer.finish(())?;
    let mut tr = SliceReader::new(&tbs_der)?;
    let (issuer, this_update, next_update, revoked) = tr.sequence(|r| {
        if r.peek_tag()? == Tag::Integer {
            let _version: u8 = r.decode()?;
        }
        let _alg: AlgorithmIdentifierOwned = r.decode()?;
        let issuer: Name = r.decode()?;
        let this_update: Time = r.decode()?;
        let next_update: Option<Time> = r.decode()?;
        let mut revoked = Vec::new();
        if !r.is_finished() && r.peek_tag()? == Tag::Sequence {
            let list: Vec<RevokedCert> = r.decode()?;
            revoked = list.into_iter().map(|e| (e.serial_number.as_bytes().to_vec(), e.revocation_date)).collect();
        }
        while !r.is_finished() {
            let _extensions: der::asn1::AnyRef = r.decode()?;
        }
        Ok((issuer, this_update, next_update, revoked))
    })?;
    tr.finish(())?;
    Ok(ParsedCrl { tbs_der, signature_algorithm, signature, issuer, this_update, next_update, revoked })
}

pub(crate) fn rsa_key(cert: &Certificate) -> Result<RsaPublicKey, String> {
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| e.to_string())?;
    RsaPublicKey::from_public_key_der(&spki).map_err(|e| format!("not an RSA public key: {e}"))
}

/// Checks an RSA PKCS#1 v1.5 signature made over `tbs` (DER) by `key`.
pub(crate) fn check_signed(
    tbs: &[u8],
    alg: &AlgorithmIdentifierOwned,
    sig: &BitString,
    key: &RsaPublicKey,
) -> Result<(), String> {
    let sig = sig.as_bytes().ok_or("signature BIT STRING has unused bits")?;
    let (scheme, digest) = match alg.oid {
        SHA1_RSA => (Pkcs1v15Sign::new::<Sha1>(), Sha1::digest(tbs).to_vec()),
        SHA256_RSA => (Pkcs1v15Sign::new::<Sha256>(), Sha256::digest(tbs).to_vec()),
        SHA384_RSA => (Pkcs1v15Sign::new::<Sha384>(), Sha384::digest(tbs).to_vec()),
        SHA512_RSA => (Pkcs1v15Sign::new::<Sha512>(), Sha512::digest(tbs).to_vec()),
        other => return Err(format!("signature algorithm {other} is not supported (RSA with SHA-1/SHA-2 only)")),
    };
    key.verify(scheme, &digest, sig).map_err(|_| "signature does not verify with the CA key".to_string())
}

/// Checks that `issuer` issued `cert`: names match and the signature verifies.
pub(crate) fn check_issued_by(cert: &Cert, issuer: &Certificate, issuer_key: &RsaPublicKey) -> Result<(), String> {
    let c = &cert.cert;
    if c.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(format!(
            "is issued by '{}', not by the CA '{}'",
            c.tbs_certificate.issuer, issuer.tbs_certificate.subject
        ));
    }
    check_signed(&cert.tbs_raw, &c.signature_algorithm, &c.signature, issuer_key)
}

/// False when the certificate says it is not a CA (basicConstraints cA=false).
pub(crate) fn may_be_ca(cert: &Certificate) -> bool {
    let Some(exts) = &cert.tbs_certificate.extensions else { return true };
    match exts.iter().find(|e| e.extn_id == BASIC_CONSTRAINTS) {
        None => true,
        Some(e) => {
            x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()).map(|bc| bc.ca).unwrap_or(false)
        }
    }
}

/// The first CN of a name, as fedmsg takes it
/// (`subject.get_attributes_for_oid(COMMON_NAME)[0].value`).
pub(crate) fn common_name(name: &Name) -> Option<String> {
    name.0.iter().flat_map(|rdn| rdn.0.iter()).find(|atv| atv.oid == COMMON_NAME).map(|atv| {
        let bytes = atv.value.value();
        match atv.value.tag() {
            Tag::BmpString => {
                let units: Vec<u16> =
                    bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])).collect();
                String::from_utf16_lossy(&units)
            }
            _ => String::from_utf8_lossy(bytes).into_owned(),
        }
    })
}

/// A serial number as OpenSSL prints it: uppercase hex, at least two digits.
pub(crate) fn serial_hex(bytes: &[u8]) -> String {
    let trimmed = match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        b => b,
    };
    trimmed.iter().map(|b| format!("{b:02X}")).collect()
}

pub(crate) fn unix(t: &Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// Formats a Unix time as RFC 3339 UTC for error messages.
pub fn fmt_time(secs: i64) -> String {
    let d = std::time::Duration::from_secs(secs.max(0) as u64);
    der::DateTime::from_unix_duration(d).map(|t| t.to_string()).unwrap_or_else(|_| format!("@{secs}"))
}
