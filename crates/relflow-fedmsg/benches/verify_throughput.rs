//! Verifications per second on one core over the real signed fixtures
//! (fedora_ca.crt, message-time validation). Run: `cargo bench -p relflow-fedmsg`.
//! A plain `fn main` (harness = false): no benchmark framework to compile.

use std::time::{Duration, Instant};

use relflow_fedmsg::{RoutingPolicy, Verifier};

fn main() {
    let fixtures = relflow_testkit::fixtures_dir();
    let ca = std::fs::read(fixtures.join("fedmsg-crypto/keys/fedora_ca.crt")).expect("fedora_ca.crt");
    let mut messages: Vec<Vec<u8>> = std::fs::read_dir(fixtures.join("messages"))
        .expect("fixtures/messages")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("--signed.json"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    messages.sort();
    assert!(!messages.is_empty(), "no signed fixtures");
    let verifier = Verifier::new(&ca, None, RoutingPolicy::default()).unwrap().validate_at_message_time(true);

    // Warm up, and make sure we measure successes.
    for m in &messages {
        verifier.verify(m).expect("fixture verifies");
    }
    let budget = Duration::from_secs(std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3));
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        for m in &messages {
            std::hint::black_box(verifier.verify(std::hint::black_box(m)).unwrap());
            n += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fedmsg verify: {n} verifications of {} real signed messages in {secs:.2} s on one core = {:.0} verifications/s ({:.1} us each)",
        messages.len(),
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
}
