//! The verifier remembers signing certificates that chained to the CA; what
//! it must not remember: revocation (a CRL reload) and validity windows.

mod common;

use common::*;
use relflow_fedmsg::{RoutingPolicy, Signer, VerifyError};

const SHELL: &str = "shell-app01.phx2.fedoraproject.org";

fn signed_by(cert: &str, envelope: &[u8]) -> Vec<u8> {
    let signer = Signer::from_pem(&key(&format!("{cert}.crt")), &key(&format!("{cert}.key"))).unwrap();
    signer.sign_bytes(envelope).unwrap()
}

#[test]
fn a_cached_chain_is_refused_once_a_reloaded_crl_revokes_it() {
    let verifier = verifier("ca.crt", None, RoutingPolicy::default());
    let signed = signed_by("dummy-revoked", &envelope("org.fedoraproject.prod.x"));
    verifier.verify_at(&signed, NOW).unwrap();
    verifier.verify_at(&signed, NOW).unwrap();
    assert_eq!(verifier.cached_chains(), 1, "one signer, remembered once");

    verifier.reload_crl(Some(&key("crl.pem"))).unwrap();
    let e = verifier.verify_at(&signed, NOW).unwrap_err();
    assert!(matches!(e, VerifyError::Revoked { .. }), "{e}");

    // A CRL that cannot be loaded is refused and the current one stays.
    assert!(verifier.reload_crl(Some(&key("expired_crl.pem"))).is_err());
    assert_eq!(verifier.verify_at(&signed, NOW).unwrap_err().kind(), "revoked");

    // Dropping the CRL makes the same certificate good again.
    verifier.reload_crl(None).unwrap();
    verifier.verify_at(&signed, NOW).unwrap();
}

#[test]
fn a_cached_chain_is_refused_outside_its_validity_window() {
    // Message time: the certificate is checked at each message's timestamp,
    // so one verifier sees the same certificate before, inside and after
    // its window (2023-02-20 .. 2033-02-17) while the CA stays current.
    let verifier = verifier("ca.crt", Some("crl.pem"), RoutingPolicy::default()).validate_at_message_time(true);
    let inside = envelope("org.fedoraproject.prod.x");
    verifier.verify_at(&signed_by(SHELL, &inside), NOW).unwrap();
    assert_eq!(verifier.cached_chains(), 1);

    let after = replace_once(&inside, b"1700000000", b"2000000000");
    let e = verifier.verify_at(&signed_by(SHELL, &after), NOW).unwrap_err();
    assert!(matches!(e, VerifyError::CertExpired { .. }), "{e}");
    let before = replace_once(&inside, b"1700000000", b"1600000000");
    let e = verifier.verify_at(&signed_by(SHELL, &before), NOW).unwrap_err();
    assert!(matches!(e, VerifyError::CertNotYetValid { .. }), "{e}");
    assert_eq!(verifier.cached_chains(), 1, "both were checked against the remembered certificate");

    // And the cache never makes a signature optional.
    let tampered = replace_once(&signed_by(SHELL, &inside), b"x-1.0-1", b"x-1.0-2");
    assert_eq!(verifier.verify_at(&tampered, NOW), Err(VerifyError::BadSignature));
}

#[test]
fn a_certificate_from_another_ca_is_never_cached() {
    let verifier = verifier("ca.crt", Some("crl.pem"), RoutingPolicy::default());
    let signed = signed_by("signed_by_expired_ca", &envelope("a.b"));
    for _ in 0..2 {
        assert_eq!(verifier.verify_at(&signed, NOW).unwrap_err().kind(), "untrusted_issuer");
    }
    assert_eq!(verifier.cached_chains(), 0);
}
