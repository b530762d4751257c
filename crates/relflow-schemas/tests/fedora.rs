//! The real schema packages, imported with the venv's Python, against the
//! real Fedora messages of the shared fixtures.

use std::path::Path;

use relflow_core::Message;
use relflow_schemas::{import, SchemaSet};

fn imported(dir: &Path) -> SchemaSet {
    let report = import(&relflow_testkit::venv_python(), dir).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for package in ["bodhi-messages", "koji-fedoramessaging-messages", "pagure-messages"] {
        assert!(report.packages.contains_key(package), "{package} not imported: {report}");
    }
    SchemaSet::load(dir).unwrap()
}

fn fixtures() -> Vec<(String, Message)> {
    let root = relflow_testkit::fixture("messages");
    let files = std::fs::read_dir(&root).unwrap().chain(std::fs::read_dir(root.join("amqp")).unwrap());
    let mut out = Vec::new();
    for path in files.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")) {
        let message = Message::decode(&std::fs::read(&path).unwrap(), "fixture", usize::MAX).unwrap();
        out.push((path.file_name().unwrap().to_string_lossy().into_owned(), message));
    }
    out
}

#[test]
fn the_installed_packages_import_and_real_fedora_messages_validate_against_them() {
    let dir = tempfile::tempdir().unwrap();
    let set = imported(dir.path());
    let comment = set.entries.iter().find(|e| e.name == "bodhi.update.comment.v1").unwrap();
    assert_eq!(comment.topic, "bodhi.update.comment");
    assert!(dir.path().join(&comment.file).is_file());

    let mut checked = Vec::new();
    let mut failed = Vec::new();
    for (name, m) in fixtures() {
        match set.validate(&m.topic, &m.headers, &m.body) {
            Ok(None) => {}
            Ok(Some(class)) => checked.push(format!("{name}: {class}")),
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    println!("validated:\n  {}\nfailed:\n  {}", checked.join("\n  "), failed.join("\n  "));
    assert!(checked.len() >= 10, "the bodhi and koji fixtures have schemas: {checked:?}");
    // Every message of the fedora-messaging era validates.
    assert!(!failed.iter().any(|f| f.contains("amqp")), "{failed:#?}");
    // The fedmsg-era ones (2017-2019) do not: today's schemas require
    // fields those messages did not have yet (koji's `epoch`, bodhi's
    // `alias`, pagure's `old_commit`). A finding, pinned so that a change
    // either way is seen: under `validate = "reject"`, such a message
    // (a backfill of old history, an old relay) is dead-lettered.
    let mut fedmsg_era: Vec<&str> = failed.iter().map(|f| f.split(':').next().unwrap()).collect();
    fedmsg_era.sort();
    assert_eq!(
        fedmsg_era,
        [
            "io.pagure.prod.pagure.git.receive.json",
            "org.fedoraproject.prod.bodhi.update.request.testing.json",
            "org.fedoraproject.prod.buildsys.build.state.change--COMPLETE-unsigned.json",
            "org.fedoraproject.prod.buildsys.build.state.change--signed.json",
            "org.fedoraproject.prod.buildsys.rpm.sign--signed.json",
            "org.fedoraproject.prod.git.receive.json",
            "org.fedoraproject.stg.bodhi.buildroot_override.tag.json",
        ],
        "{failed:#?}"
    );
}

#[test]
fn a_re_import_drops_the_classes_of_packages_gone_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    imported(dir.path());
    std::fs::write(dir.path().join("mine.txt"), "kept").unwrap();
    let index = dir.path().join("index.json");
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    let gone = serde_json::json!({"name": "gone.v1", "class": "g:G", "topic": "gone", "file": "gone.v1.json"});
    doc["schemas"].as_array_mut().unwrap().push(gone);
    std::fs::write(&index, doc.to_string()).unwrap();
    std::fs::write(dir.path().join("gone.v1.json"), "{}").unwrap();
    imported(dir.path());
    assert!(!dir.path().join("gone.v1.json").exists());
    assert!(dir.path().join("mine.txt").exists());
}

#[test]
fn a_python_without_fedora_messaging_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = import(Path::new("/usr/bin/python3"), dir.path()).unwrap_err().to_string();
    assert!(e.contains("could not list the schemas") && e.contains("No module named 'fedora_messaging'"), "{e}");
    let e = import(Path::new("/nonexistent/python"), dir.path()).unwrap_err().to_string();
    assert!(e.contains("cannot run /nonexistent/python"), "{e}");
}
