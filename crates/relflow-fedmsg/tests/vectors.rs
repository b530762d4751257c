//! fedmsg compatibility against the shared vectors: canonical bytes, real
//! signed Fedora messages, fedmsg's own test CA/CRL/keys.

mod common;

use std::collections::BTreeMap;

use common::*;
use relflow_fedmsg::{
    canonical, fix_datagrepper_message, signed_bytes, LoadError, PolicyError, PyJson, RoutingDecision, RoutingPolicy,
    Signer, Verifier, VerifyError,
};

const KOJI: &str = "koji-koji01.phx2.fedoraproject.org";
const SHELL: &str = "shell-app01.phx2.fedoraproject.org";

/// Every `*.canonical.json` vector is reproduced byte for byte from its
/// message, both from raw bytes and via serde_json.
#[test]
fn canonical_vectors_reproduced_byte_for_byte() {
    let dir = fixtures().join("fedmsg-crypto");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".canonical.json") else { continue };
        let want = std::fs::read(&path).unwrap();
        let msg_path = if stem.starts_with("x509_") {
            dir.join(format!("{stem}.json"))
        } else {
            fixtures().join("messages").join(format!("{stem}.json"))
        };
        let msg = std::fs::read(&msg_path).unwrap();
        let got = signed_bytes(&canonical::parse(&msg).unwrap());
        assert_eq!(got.as_bytes(), &want[..], "{name}");
        let via_serde: serde_json::Value = serde_json::from_slice(&msg).unwrap();
        assert_eq!(signed_bytes(&PyJson::from_serde(&via_serde)).as_bytes(), &want[..], "{name} via serde_json");
        n += 1;
    }
    assert!(n >= 5, "found only {n} canonical vectors");
}

/// The real 2017 messages verify against Fedora's CA. Their signing
/// certificate (koji-koji01, serial 01DB) ran 2015-01-05 to 2025-01-02, so
/// today they only verify when the certificate is checked at the message's
/// own timestamp; the CA file (2022 re-issue, same key) is checked at now.
#[test]
fn real_signed_messages_verify_at_message_time() {
    for (name, msg) in signed_messages() {
        let info = fedora().verify_at(&msg, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.common_name, KOJI, "{name}");
        assert_eq!(info.serial, "01DB");
        assert_eq!(info.routing, RoutingDecision::Unlisted);
        assert!(
            info.checked_at > 1_504_000_000 && info.checked_at < 1_505_000_000,
            "{name}: checked at {}",
            info.checked_at
        );
        // With the real clock too (fedora_ca.crt is valid until 2122).
        fedora().verify(&msg).unwrap_or_else(|e| panic!("{name}: {e}"));
        // And from a serde_json value.
        let v: serde_json::Value = serde_json::from_slice(&msg).unwrap();
        fedora().verify_value(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn real_signed_messages_fail_at_now_because_the_certificate_expired() {
    let v = verifier("fedora_ca.crt", None, RoutingPolicy::default());
    for (name, msg) in signed_messages() {
        let e = v.verify_at(&msg, NOW).unwrap_err();
        assert!(matches!(e, VerifyError::CertExpired { .. }), "{name}: {e}");
        let s = e.to_string();
        assert!(
            s.contains("certificate CN=koji-koji01.phx2.fedoraproject.org serial 01DB expired at 2025-01-02T21:38:21Z"),
            "{s}"
        );
        assert!(s.contains("validate_at_message_time"), "{s}");
        // ... and they were fine while it was valid.
        v.verify_at(&msg, 1_700_000_000).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn body_tamper_of_each_real_message_fails_the_signature() {
    for (name, msg) in signed_messages() {
        // One byte in the body: the last digit of the timestamp, and a letter of the username.
        let v = canonical::parse(&msg).unwrap();
        let ts = v.get("timestamp").unwrap().as_f64().unwrap() as i64;
        let (old, new) = (format!("\"timestamp\": {ts}"), format!("\"timestamp\": {}", ts + 1));
        assert_eq!(old.len(), new.len());
        let bad = replace_once(&msg, old.as_bytes(), new.as_bytes());
        assert_eq!(fedora().verify_at(&bad, NOW), Err(VerifyError::BadSignature), "{name}");
        let bad = replace_once(&msg, b"\"username\": \"apache\"", b"\"username\": \"apachf\"");
        let e = fedora().verify_at(&bad, NOW).unwrap_err();
        assert_eq!(e.to_string(), "signature does not match the message (tampered, or canonical form differs)");
        assert_eq!(e.kind(), "bad_signature");
    }
}

#[test]
fn signature_tamper_of_each_real_message_fails() {
    for (name, msg) in signed_messages() {
        let v = canonical::parse(&msg).unwrap();
        let sig = v.get("signature").unwrap().as_string().unwrap();
        // Flip one letter well inside the base64 (stays valid base64).
        let pos = sig.char_indices().skip(20).find(|(_, c)| c.is_ascii_alphabetic()).unwrap().0;
        let mut tampered = sig.clone().into_bytes();
        tampered[pos] ^= 0x20; // swap case
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(pos < 76, "stay on the first base64 line (no JSON escapes)");
        let bad = replace_once(&msg, &sig.as_bytes()[..=pos], &tampered.as_bytes()[..=pos]);
        assert_ne!(bad, msg);
        assert_eq!(fedora().verify_at(&bad, NOW), Err(VerifyError::BadSignature), "{name}");
    }
}

/// Every single-byte change (XOR 1, so whitespace never turns into other
/// whitespace) of every real signed message fails, whatever the byte.
#[test]
fn every_one_byte_change_of_the_real_messages_fails() {
    let v = fedora();
    for (name, msg) in signed_messages() {
        for i in 0..msg.len() {
            let mut bad = msg.clone();
            bad[i] ^= 1;
            if let Ok(info) = v.verify_at(&bad, NOW) {
                panic!(
                    "{name}: byte {i} ({:?} -> {:?}) changed but still verifies as {info:?}",
                    msg[i] as char, bad[i] as char
                );
            }
        }
    }
}

#[test]
fn fedmsg_generated_unicode_vector_verifies_with_test_ca_and_crl() {
    let msg = read("fedmsg-crypto/x509_testcert_unicode_vector.json");
    let info = test_ca().verify_at(&msg, NOW).unwrap();
    assert_eq!(info.common_name, SHELL);
    assert_eq!(info.serial, "03");
    assert_eq!(info.topic.as_deref(), Some("org.fedoraproject.dev.test.unicode"));
    let bad = replace_once(&msg, "\\u011bk".as_bytes(), "\\u011ck".as_bytes());
    assert_eq!(test_ca().verify_at(&bad, NOW), Err(VerifyError::BadSignature));
}

/// PKCS#1 v1.5 is deterministic: re-signing the unicode vector with fedmsg's
/// test key reproduces fedmsg's `signature` (and `certificate`) exactly.
#[test]
fn signing_reproduces_fedmsg_signature_byte_for_byte() {
    let original = canonical::parse(&read("fedmsg-crypto/x509_testcert_unicode_vector.json")).unwrap();
    let mut msg = original.clone();
    msg.remove("signature");
    msg.remove("certificate");
    msg.remove("crypto"); // sign() adds it back before signing, like fedmsg
    let signer = Signer::from_pem(&key(&format!("{SHELL}.crt")), &key(&format!("{SHELL}.key"))).unwrap();
    assert_eq!(signer.common_name(), Some(SHELL));
    signer.sign(&mut msg).unwrap();
    assert_eq!(msg.get("signature"), original.get("signature"));
    assert_eq!(msg.get("certificate"), original.get("certificate"));
    assert_eq!(canonical::to_canonical(&msg), canonical::to_canonical(&original));
}

#[test]
fn sign_then_verify_round_trip() {
    let signer = Signer::from_pem(&key(&format!("{SHELL}.crt")), &key(&format!("{SHELL}.key"))).unwrap();
    let signed = signer.sign_bytes(&envelope("org.fedoraproject.prod.relflow.test")).unwrap();
    let info = test_ca().verify_at(&signed, NOW).unwrap();
    assert_eq!(info.common_name, SHELL);
    // Current clock too (test CA and CRL run to 2033).
    test_ca().verify(&signed).unwrap();
    // serde_json path both ways.
    let value: serde_json::Value = serde_json::from_slice(&envelope("a.b")).unwrap();
    let signed_value = signer.sign_value(&value).unwrap();
    assert_eq!(signed_value["crypto"], "x509");
    test_ca().verify_value(&signed_value).unwrap();
    // Re-signing an already signed envelope replaces the old signature.
    let resigned = signer.sign_bytes(&signed).unwrap();
    assert_eq!(resigned, signed);
    // Tampering after signing is caught.
    let bad = replace_once(&signed, b"x-1.0-1", b"x-1.0-2");
    assert_eq!(test_ca().verify_at(&bad, NOW), Err(VerifyError::BadSignature));
}

#[test]
fn revoked_certificate_is_rejected_by_the_crl() {
    let signer = Signer::from_pem(&key("dummy-revoked.crt"), &key("dummy-revoked.key")).unwrap();
    let signed = signer.sign_bytes(&envelope("org.fedoraproject.prod.x")).unwrap();
    let e = test_ca().verify_at(&signed, NOW).unwrap_err();
    assert!(matches!(e, VerifyError::Revoked { .. }), "{e}");
    assert!(e.to_string().starts_with("certificate CN=dummy-revoked serial 02 is revoked by the CRL"), "{e}");
    // Also in message-time mode: a revoked key can write any timestamp.
    let e = test_ca().validate_at_message_time(true).verify_at(&signed, NOW).unwrap_err();
    assert_eq!(e.kind(), "revoked");
    // Without the CRL the same message is valid (so the CRL is what refused it).
    verifier("ca.crt", None, RoutingPolicy::default()).verify_at(&signed, NOW).unwrap();
}

#[test]
fn stale_or_bad_crls() {
    // crl.pem: nextUpdate 2033-03-28.
    let signer = Signer::from_pem(&key(&format!("{SHELL}.crt")), &key(&format!("{SHELL}.key"))).unwrap();
    let signed = signer.sign_bytes(&envelope("a.b")).unwrap();
    let e = test_ca().verify_at(&signed, 2_000_000_000).unwrap_err();
    assert!(matches!(e, VerifyError::CrlExpired { .. }), "{e}");
    assert!(e.to_string().contains("CRL expired at 2033-03-28T11:27:43Z"), "{e}");
    // Before its thisUpdate (2023-03-31) it is not yet valid.
    assert_eq!(test_ca().verify_at(&signed, 1_677_628_800).unwrap_err().kind(), "crl_not_valid");
    // expired_crl.pem (2012, md5WithRSA) is refused when loading.
    let e = Verifier::new(&key("ca.crt"), Some(&key("expired_crl.pem")), RoutingPolicy::default()).err().unwrap();
    assert!(matches!(e, LoadError::Crl(_)), "{e}");
    // A CRL from another CA is refused when loading.
    let e = Verifier::new(&key("expired_ca.crt"), Some(&key("crl.pem")), RoutingPolicy::default()).err().unwrap();
    assert!(e.to_string().contains("not by the CA"), "{e}");
}

#[test]
fn certificate_from_an_expired_ca_is_rejected() {
    let signer = Signer::from_pem(&key("signed_by_expired_ca.crt"), &key("signed_by_expired_ca.key")).unwrap();
    let signed = signer.sign_bytes(&envelope("a.b")).unwrap();
    let v = verifier("expired_ca.crt", None, RoutingPolicy::default());
    let e = v.verify_at(&signed, NOW).unwrap_err();
    assert!(matches!(e, VerifyError::CaExpired { .. }), "{e}");
    assert!(e.to_string().contains("expired at 2017-06-19T15:26:55Z"), "{e}");
    // Message time does not rescue an expired CA.
    let v = v.validate_at_message_time(true);
    assert_eq!(v.verify_at(&signed, NOW).unwrap_err().kind(), "ca_not_valid");
    // Inside the CA's 30-minute life the same message is valid.
    assert_eq!(v.verify_at(&signed, 1_497_885_600).map(|i| i.common_name).unwrap(), "myoldca.example.com");
    // And the test CA did not issue it.
    assert_eq!(test_ca().verify_at(&signed, NOW).unwrap_err().kind(), "untrusted_issuer");
}

#[test]
fn wrong_ca_is_not_trusted() {
    // fedmsg's test CA (ca.crt) and Fedora's 2012 production CA (badca.crt)
    // share a subject name but not a key.
    let unicode = read("fedmsg-crypto/x509_testcert_unicode_vector.json");
    let e = verifier("badca.crt", None, RoutingPolicy::default()).verify_at(&unicode, 1_650_000_000).unwrap_err();
    assert!(matches!(e, VerifyError::NotSignedByCa { .. }), "{e}");
    assert!(e.to_string().starts_with("not signed by the configured CA"), "{e}");
    for (name, msg) in signed_messages() {
        let e = test_ca().validate_at_message_time(true).verify_at(&msg, NOW).unwrap_err();
        assert!(matches!(e, VerifyError::NotSignedByCa { .. }), "{name}: {e}");
        // badca.crt IS the original Fedora CA: it verifies them while it was valid...
        let old = verifier("badca.crt", None, RoutingPolicy::default());
        assert_eq!(old.verify_at(&msg, 1_600_000_000).unwrap().common_name, KOJI);
        // ... and reports its own expiry afterwards.
        assert_eq!(old.validate_at_message_time(true).verify_at(&msg, NOW).unwrap_err().kind(), "ca_not_valid");
    }
}

fn policy(nitpicky: bool) -> RoutingPolicy {
    let mut t = BTreeMap::new();
    t.insert("org.fedoraproject.prod.buildsys.tag".to_string(), vec![KOJI.to_string()]);
    t.insert(
        "org.fedoraproject.prod.buildsys.untag".to_string(),
        vec!["bodhi-backend01.phx2.fedoraproject.org".to_string()],
    );
    RoutingPolicy::new(t, nitpicky)
}

#[test]
fn routing_policy_allow_deny_and_nitpicky() {
    let msgs: BTreeMap<String, Vec<u8>> = signed_messages().into_iter().collect();
    let get = |suffix: &str| msgs.iter().find(|(k, _)| k.contains(suffix)).unwrap().1.clone();
    for nitpicky in [false, true] {
        let v = verifier("fedora_ca.crt", None, policy(nitpicky)).validate_at_message_time(true);
        // Allowed: topic listed with koji's CN.
        assert_eq!(v.verify_at(&get("buildsys.tag--"), NOW).unwrap().routing, RoutingDecision::Allowed);
        // Denied: topic listed with someone else.
        let e = v.verify_at(&get("buildsys.untag--"), NOW).unwrap_err();
        assert!(matches!(e, VerifyError::Policy(PolicyError::SignerNotAllowed { .. })), "{e}");
        assert!(e.to_string().starts_with(
            "signer 'koji-koji01.phx2.fedoraproject.org' not allowed for topic 'org.fedoraproject.prod.buildsys.untag' by routing_policy"), "{e}");
        // Unlisted topic: passes unless nitpicky.
        let r = v.verify_at(&get("rpm.sign--"), NOW);
        if nitpicky {
            assert_eq!(r.unwrap_err().kind(), "policy_unlisted_topic");
        } else {
            assert_eq!(r.unwrap().routing, RoutingDecision::Unlisted);
        }
    }
}

#[test]
fn unsigned_and_malformed_messages() {
    let unsigned = read("messages/org.fedoraproject.prod.buildsys.build.state.change--COMPLETE-unsigned.json");
    let e = fedora().verify_at(&unsigned, NOW).unwrap_err();
    assert!(e.to_string().starts_with("unsigned message: no 'signature'/'certificate' fields"), "{e}");
    assert_eq!(fedora().verify_at(b"[1,2]", NOW).unwrap_err().kind(), "malformed");
    assert_eq!(fedora().verify_at(b"{\"a\":", NOW).unwrap_err().kind(), "malformed");
    let (_, msg) = signed_messages().remove(0);
    let gpg = replace_once(&msg, b"\"crypto\": \"x509\"", b"\"crypto\": \"gpg\"\x20");
    assert_eq!(fedora().verify_at(&gpg, NOW).unwrap_err().kind(), "unsupported_crypto");
    // Message-time validation needs a timestamp.
    let mut v = canonical::parse(&msg).unwrap();
    v.remove("timestamp");
    assert_eq!(fedora().verify_json_at(&v, NOW), Err(VerifyError::NoTimestamp));
}

#[test]
fn config_from_toml() {
    let dir = fixtures().join("fedmsg-crypto/keys");
    let text = format!(
        r#"
ca_cert = "ca.crt"
crl = "crl.pem"
routing_nitpicky = true
validate_at_message_time = false
[routing_policy]
"org.fedoraproject.dev.test.unicode" = ["{SHELL}"]
[sign]
cert = "{SHELL}.crt"
key = "{SHELL}.key"
"#
    );
    let mut cfg: relflow_fedmsg::FedmsgConfig = toml::from_str(&text).unwrap();
    cfg.resolve_paths(&dir);
    let v = Verifier::from_config(&cfg).unwrap();
    let info = v.verify_at(&read("fedmsg-crypto/x509_testcert_unicode_vector.json"), NOW).unwrap();
    assert_eq!(info.routing, RoutingDecision::Allowed);
    let signer = Signer::from_config(cfg.sign.as_ref().unwrap()).unwrap();
    let signed = signer.sign_bytes(&envelope("org.fedoraproject.dev.unlisted")).unwrap();
    assert_eq!(v.verify_at(&signed, NOW).unwrap_err().kind(), "policy_unlisted_topic");
    // Minimal config and typo detection.
    let min: relflow_fedmsg::FedmsgConfig = toml::from_str("ca_cert = 'x'").unwrap();
    assert!(!min.routing_nitpicky && !min.validate_at_message_time && min.crl.is_none() && min.sign.is_none());
    assert!(toml::from_str::<relflow_fedmsg::FedmsgConfig>("ca_cert = 'x'\nrouting_nitpicki = true").is_err());
    // Missing files are reported with their path.
    let mut bad = cfg.clone();
    bad.ca_cert = dir.join("nope.crt");
    assert!(Verifier::from_config(&bad).err().unwrap().to_string().contains("nope.crt"));
}

#[test]
fn signer_refuses_a_key_that_does_not_match_its_certificate() {
    let e = Signer::from_pem(&key(&format!("{SHELL}.crt")), &key("dummy-revoked.key")).err().unwrap();
    assert!(matches!(e, relflow_fedmsg::SignError::KeyMismatch), "{e}");
}

/// Messages as datagrepper serves them (extra source_* fields, empty headers,
/// float timestamp) verify after `fix_datagrepper_message`, as in fedmsg.
#[test]
fn datagrepper_form_verifies_after_fixing() {
    for (name, msg) in signed_messages() {
        let mut v = canonical::parse(&msg).unwrap();
        let ts = v.get("timestamp").unwrap().as_f64().unwrap();
        v.insert("timestamp", PyJson::Float(ts + 0.25));
        v.insert("source_name", PyJson::Str("datanommer".into()));
        v.insert("source_version", PyJson::Str("0.8.1".into()));
        v.insert("headers", PyJson::Object(vec![]));
        assert_eq!(fedora().verify_json_at(&v, NOW), Err(VerifyError::BadSignature), "{name}");
        assert!(fix_datagrepper_message(&mut v));
        fedora().verify_json_at(&v, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!fix_datagrepper_message(&mut v), "only datagrepper messages are touched");
    }
}

#[test]
fn verifier_and_signer_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Verifier>();
    assert_send_sync::<Signer>();
    assert_send_sync::<VerifyError>();
}
