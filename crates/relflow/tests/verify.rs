//! `relflow verify`: fedmsg envelope files against [fedmsg] (test CA + CRL).

use std::io::Write;
use std::process::{Command, Stdio};

use relflow_testkit::fixtures_dir as fixtures;

#[test]
fn verify_prints_valid_or_the_failed_check_per_file_and_fails_if_any_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let keys = fixtures().join("fedmsg-crypto/keys");
    let config = dir.path().join("relflow.toml");
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    std::fs::write(
        &config,
        format!(
            "playbooks_dir = \"playbooks\"\n[fedmsg]\nca_cert = \"{}\"\ncrl = \"{}\"\n",
            keys.join("ca.crt").display(),
            keys.join("crl.pem").display()
        ),
    )
    .unwrap();
    let good = fixtures().join("fedmsg-crypto/x509_testcert_unicode_vector.json");
    let text = std::fs::read_to_string(&good).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["msg"]["injected"] = true.into();
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, v.to_string()).unwrap();
    let unsigned =
        fixtures().join("messages/org.fedoraproject.prod.buildsys.build.state.change--COMPLETE-unsigned.json");

    let relflow = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_relflow"));
        c.arg("--config").arg(&config).env_remove("RELFLOW_CONFIG");
        c
    };
    let out = relflow().arg("verify").arg(&good).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("valid (signed by shell-app01.phx2.fedoraproject.org"), "{stdout}");

    let out = relflow().arg("verify").arg(&good).arg(&tampered).arg(&unsigned).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "one invalid file makes it fail: {stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].ends_with("valid (signed by shell-app01.phx2.fedoraproject.org, serial 03)"), "{stdout}");
    assert!(
        lines[1].contains("tampered.json: invalid: signature does not match") && lines[1].ends_with("[bad_signature]"),
        "{stdout}"
    );
    assert!(lines[2].contains("invalid: unsigned message") && lines[2].ends_with("[unsigned]"), "{stdout}");

    // stdin, JSON output
    let mut child =
        relflow().args(["verify", "--json", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["valid"], true);
    assert_eq!(v[0]["signer"], "shell-app01.phx2.fedoraproject.org");

    // No [fedmsg]: says what to add.
    std::fs::write(&config, "playbooks_dir = \"playbooks\"\n").unwrap();
    let out = relflow().arg("verify").arg(&good).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [fedmsg] section"));
}
