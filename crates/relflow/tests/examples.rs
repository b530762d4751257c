//! Every playbook shipped in examples/ passes real `ansible-playbook
//! --syntax-check`, and the example config passes `relflow check`.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn playbooks(dir: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![common::repo_root().join(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yml")
                && std::fs::read_to_string(&p).unwrap().contains("hosts:")
            {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn every_example_playbook_passes_ansible_syntax_check() {
    let books: Vec<_> = playbooks("examples/playbooks").into_iter().chain(playbooks("examples/flr")).collect();
    assert!(books.len() >= 4, "found {books:?}");
    for book in books {
        let out = Command::new(common::ansible_playbook())
            .args(["--syntax-check", "-i", "localhost,"])
            .arg(&book)
            .env("ANSIBLE_CONFIG", common::repo_root().join("examples/ansible.cfg"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", book.display(), common::describe(&out));
    }
}

#[test]
fn the_example_config_checks_out() {
    let out = Command::new(env!("CARGO_BIN_EXE_relflow"))
        .arg("--config")
        .arg(common::repo_root().join("examples/relflow.toml"))
        .arg("check")
        .env("RELFLOW_DATA_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
}

#[test]
fn the_systemd_units_verify() {
    let dir = tempfile::tempdir().unwrap();
    for unit in ["relflow-worker@.service", "relflow-bridge.service"] {
        let text = std::fs::read_to_string(common::repo_root().join("contrib/systemd").join(unit)).unwrap();
        let text = text.replace("/usr/bin/relflow", env!("CARGO_BIN_EXE_relflow"));
        // A template is verified through an instance of it.
        let name = unit.replace("@.service", "@1.service");
        std::fs::write(dir.path().join(&name), text).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.path().join(&name))
            .output()
            .expect("systemd-analyze (package systemd)");
        // systemd only warns (exit 0) about unknown keys or bad values: any output is a problem.
        assert!(out.status.success() && out.stderr.trim_ascii().is_empty(), "{unit}: {}", common::describe(&out));
    }
}
