mod common;
use common::*;
use flr::checksum::{self, Algorithm};

#[test]
fn create_then_verify_roundtrip() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("b.iso"), b"hello world").unwrap();
    std::fs::write(d.join("a.qcow2"), vec![7u8; 3 << 20]).unwrap();
    std::fs::write(d.join(".hidden"), b"x").unwrap();
    let o =
        flr(&["checksum", "create", "--json", "--name", "Fedora-Cloud-39-1.5-x86_64-CHECKSUM", d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!(j["action"], "created");
    let text = std::fs::read_to_string(d.join("Fedora-Cloud-39-1.5-x86_64-CHECKSUM")).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>()[2..],
        ["# b.iso: 11 bytes", "SHA256 (b.iso) = b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"]
    );
    assert!(text.starts_with("# a.qcow2: 3145728 bytes\nSHA256 (a.qcow2) = "));

    // Idempotent.
    let again =
        checksum::create(d, "Fedora-Cloud-39-1.5-x86_64-CHECKSUM", Algorithm::Sha256, false, false, None).unwrap();
    assert_eq!(again.action, "unchanged");

    let o = flr(&["checksum", "verify", "--json", d.to_str().unwrap()]);
    assert!(o.status.success());
    let j = json(&o);
    assert_eq!(j["ok"], true);
    assert_eq!(j["files"][0]["signed"], false);
    assert_eq!(j["files"][0]["entries"].as_array().unwrap().len(), 2);
}

#[test]
fn progress_goes_to_stderr_unless_quiet_or_json() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("a.iso"), b"a").unwrap();
    let d = t.path().to_str().unwrap();
    let o = flr(&["checksum", "create", "--dry-run", d]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("checksum: [1/1] a.iso"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("would-write"));
    assert!(!t.path().join("CHECKSUM").exists(), "dry run must not write");
    assert!(flr(&["checksum", "create", "--quiet", d]).stderr.is_empty());
    assert!(flr(&["checksum", "verify", "--json", d]).stderr.is_empty());
}

#[test]
fn tampered_file_fails_with_exit_3_and_report() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("a.iso"), b"original").unwrap();
    std::fs::write(d.join("b.iso"), b"original").unwrap();
    std::fs::write(d.join("c.iso"), b"original").unwrap();
    checksum::create(d, "CHECKSUM", Algorithm::Sha256, false, false, None).unwrap();
    std::fs::write(d.join("a.iso"), b"origina!").unwrap(); // same size, other content
    std::fs::write(d.join("b.iso"), b"longer content").unwrap();
    std::fs::remove_file(d.join("c.iso")).unwrap();
    let o = flr(&["checksum", "verify", "--json", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let j = json(&o);
    assert_eq!(j["ok"], false);
    let statuses: Vec<&str> =
        j["files"][0]["entries"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["mismatch", "size-mismatch", "missing"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("checksum verification failed"));
}

#[test]
fn signed_checksum_is_detected_verified_and_not_overwritten() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("Fedora-Server-netinst-x86_64-39-1.5.iso"), b"hello world").unwrap();
    let signed = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n\
# Fedora-Server-netinst-x86_64-39-1.5.iso: 11 bytes\n\
SHA256 (Fedora-Server-netinst-x86_64-39-1.5.iso) = b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9\n\
-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n=abcd\n-----END PGP SIGNATURE-----\n";
    let cf = d.join("Fedora-Server-39-1.5-x86_64-CHECKSUM");
    std::fs::write(&cf, signed).unwrap();
    let o = flr(&["checksum", "verify", "--json", "--require-signed", cf.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o)["files"][0]["signed"], true);

    let o = flr(&["checksum", "create", "--name", "Fedora-Server-39-1.5-x86_64-CHECKSUM", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already signed"));
    assert_eq!(std::fs::read_to_string(&cf).unwrap(), signed);

    // An unsigned file fails --require-signed.
    checksum::create(d, "CHECKSUM", Algorithm::Sha256, false, false, None).unwrap();
    let o = flr(&["checksum", "verify", "--require-signed", d.join("CHECKSUM").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn entries_escaping_the_directory_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("iso");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(t.path().join("secret"), b"hello world").unwrap();
    std::fs::write(
        d.join("CHECKSUM"),
        "SHA256 (../secret) = b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9\n",
    )
    .unwrap();
    let r = checksum::verify(&d, false, false, None).unwrap();
    assert!(!r.ok);
    assert_eq!(r.files[0].entries[0].status, "invalid-path");
}

#[test]
fn recursive_verify_over_a_compose_and_sha512() {
    let t = tempfile::tempdir().unwrap();
    let root = make_compose(t.path(), "Fedora-39-20231101.0", "FINISHED");
    let o = flr(&["checksum", "verify", root.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "no CHECKSUM at the top without --recursive");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--recursive"));
    let o = flr(&["checksum", "verify", "--recursive", "--json", root.to_str().unwrap()]);
    assert!(o.status.success());
    assert_eq!(json(&o)["files"].as_array().unwrap().len(), 1);

    let d = t.path().join("s512");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("x.raw.xz"), b"data").unwrap();
    let r = checksum::create(&d, "CHECKSUM", Algorithm::Sha512, false, false, None).unwrap();
    assert_eq!(r.entries[0].digest.len(), 128);
    assert!(checksum::verify(&d, false, false, None).unwrap().ok);
}

#[test]
fn many_files_hash_in_parallel_in_order() {
    let t = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..20)
        .map(|i| {
            let p = t.path().join(format!("f{i:02}"));
            std::fs::write(&p, format!("content {i}")).unwrap();
            p
        })
        .collect();
    let lines = std::sync::Mutex::new(Vec::new());
    let sink = |s: &str| lines.lock().unwrap().push(s.to_string());
    let got = checksum::hash_many(&files, Algorithm::Sha256, Some(&sink));
    for (i, d) in got.into_iter().enumerate() {
        let expect = checksum::hash_file(&files[i], Algorithm::Sha256, &Default::default()).unwrap();
        assert_eq!(d.unwrap(), expect);
    }
    assert_eq!(lines.lock().unwrap().len(), 20);
}
