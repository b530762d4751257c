//! Shared fixture helpers (fixtures live in the shared/ folder beside the repo).
#![allow(dead_code)]

use relflow_fedmsg::{RoutingPolicy, Verifier};
pub use relflow_testkit::fixtures_dir as fixtures;

/// 2026-01-01T00:00:00Z: a fixed "now" so the tests do not age (the test CA
/// and CRL run to 2033, Fedora's 2017 leaf certificates expired in 2025).
pub const NOW: i64 = 1_767_225_600;

pub fn key(name: &str) -> Vec<u8> {
    let p = fixtures().join("fedmsg-crypto/keys").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn read(rel: &str) -> Vec<u8> {
    let p = fixtures().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The real 2017 signed messages: (file name, bytes). At least four.
pub fn signed_messages() -> Vec<(String, Vec<u8>)> {
    let dir = fixtures().join("messages");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("--signed.json"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(out.len() >= 4, "expected the signed fixtures in {}", dir.display());
    out
}

pub fn verifier(ca: &str, crl: Option<&str>, policy: RoutingPolicy) -> Verifier {
    let crl = crl.map(key);
    Verifier::new(&key(ca), crl.as_deref(), policy).unwrap()
}

pub fn fedora() -> Verifier {
    verifier("fedora_ca.crt", None, RoutingPolicy::default()).validate_at_message_time(true)
}

pub fn test_ca() -> Verifier {
    verifier("ca.crt", Some("crl.pem"), RoutingPolicy::default())
}

/// A tiny unsigned envelope like fedmsg publishes.
pub fn envelope(topic: &str) -> Vec<u8> {
    format!(
        r#"{{"topic":"{topic}","msg":{{"build":"x-1.0-1","n":1.5}},"msg_id":"2024-abc","timestamp":1700000000,"i":1,"username":"relflow"}}"#
    )
    .into_bytes()
}

/// Replaces the first occurrence of `from` in `data` by `to` (same length).
pub fn replace_once(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let i = data.windows(from.len()).position(|w| w == from).expect("pattern in fixture");
    let mut out = data.to_vec();
    out[i..i + from.len()].copy_from_slice(to);
    out
}
