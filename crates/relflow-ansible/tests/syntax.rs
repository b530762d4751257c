//! `syntax_check` with the real ansible-playbook: good playbooks pass,
//! broken YAML and unknown keywords fail with ansible's own explanation.

mod common;

use common::*;
use relflow_ansible::{syntax_check, SyntaxError};

#[test]
fn good_playbooks_pass_and_broken_ones_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    for book in ["results.yml", "fail.yml"] {
        let r = syntax_check(&cfg, &playbooks_dir().join(book), Some("localhost,"), &playbooks_dir());
        assert_eq!(r, Ok(()), "{book}");
    }
    let broken = dir.path().join("broken.yml");
    std::fs::write(&broken, "- hosts: localhost\n  tasks:\n    - name: x\n      debug: msg: 'a: b'\n").unwrap();
    match syntax_check(&cfg, &broken, Some("localhost,"), dir.path()) {
        Err(SyntaxError::Invalid(why)) => assert!(why.to_lowercase().contains("yaml"), "{why}"),
        other => panic!("broken YAML must fail: {other:?}"),
    }
    let unknown = dir.path().join("unknown.yml");
    std::fs::write(&unknown, "- hosts: localhost\n  taks: []\n").unwrap();
    match syntax_check(&cfg, &unknown, None, dir.path()) {
        Err(SyntaxError::Invalid(why)) => assert!(why.contains("taks"), "{why}"),
        other => panic!("an unknown play keyword must fail: {other:?}"),
    }
    let mut missing = cfg.clone();
    missing.ansible_playbook = dir.path().join("no-such-ansible-playbook");
    assert!(matches!(syntax_check(&missing, &broken, None, dir.path()), Err(SyntaxError::Spawn { .. })));
}
