//! The shipped samples are the real fixtures, unchanged, and all decode;
//! `[check] samples` and rule-test messages join them.

use std::path::PathBuf;

use relflow_core::Config;

fn fixtures() -> PathBuf {
    std::env::var_os("RELFLOW_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"))
        .join("messages")
}

#[test]
fn shipped_samples_are_the_shared_fixtures_byte_for_byte_and_all_decode() {
    let files = relflow_check::samples::shipped_files();
    let on_disk: Vec<_> = std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(files.len(), on_disk.len(), "every file in samples/ is compiled in");
    for (name, text) in files {
        let original = std::fs::read_to_string(fixtures().join(name)).unwrap();
        assert_eq!(*text, original, "{name} differs from shared/fixtures");
        assert!(name.starts_with(&relflow_core::Message::decode(text.as_bytes(), "t", usize::MAX).unwrap().topic));
    }
    assert_eq!(relflow_check::samples::shipped().len(), files.len());
}

#[test]
fn configured_samples_and_rule_test_messages_are_used_and_broken_ones_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("samples")).unwrap();
    let finished = fixtures().join("org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json");
    std::fs::copy(&finished, dir.path().join("samples/finished.json")).unwrap();
    std::fs::write(dir.path().join("samples/broken.json"), "{").unwrap();
    let toml = r#"
playbooks_dir = "p"
[check]
samples = ["samples/*.json", "nothing/*.json"]
shipped_samples = false
[[rule]]
name = "compose"
topic = "org.fedoraproject.*.pungi.compose.status.change"
when = "msg.stauts == 'FINISHED'"
playbook = "a.yml"
[[rule.test]]
message = "samples/finished.json"
expect = "no-match"
"#;
    std::fs::write(dir.path().join("relflow.toml"), toml).unwrap();
    let config = Config::load(&dir.path().join("relflow.toml")).unwrap();
    let report = relflow_check::check(&config, false);
    assert_eq!(report.samples, 1, "the rule test's message is the same file, used once");
    assert_eq!(report.rules[0].samples, 1);
    let errors = report.errors();
    assert!(errors.len() == 1 && errors[0].starts_with("samples/broken.json: not a message"), "{errors:?}");
    let warnings = report.warnings();
    assert!(warnings.iter().any(|w| w.contains("nothing/*.json matches no file")), "{warnings:?}");
    assert!(
        warnings.iter().any(|w| w.contains("`msg.stauts`") && w.contains("did you mean `status`?")),
        "{warnings:?}"
    );
    let text = report.to_string();
    assert!(text.contains("compose                  0 of 1 sample(s) match"), "{text}");
}
