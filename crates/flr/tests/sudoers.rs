mod common;
use common::*;
use std::process::Command;

#[test]
fn snippet_passes_visudo() {
    let o =
        flr(&["sudoers", "--user", "loopabull_compose", "--allow", "compose,checksum,sync,koji.tag,ostree.update-ref"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("/usr/bin/flr koji tag *"));
    assert!(text.contains("loopabull_compose ALL=(root) NOPASSWD: FLR_LOOPABULL_COMPOSE"));
    let visudo = ["/usr/sbin/visudo", "/sbin/visudo", "visudo"]
        .into_iter()
        .find(|v| Command::new(v).arg("--version").output().is_ok());
    let Some(visudo) = visudo else {
        panic!("visudo check: install the sudo package: scripts/test.sh installs it");
    };
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("flr-loopabull_compose");
    std::fs::write(&f, &text).unwrap();
    let v = Command::new(visudo).arg("-cf").arg(&f).output().unwrap();
    assert!(
        v.status.success(),
        "visudo rejected:\n{text}\n{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );

    // A pinned config (and a user name with a dash) is valid sudoers too.
    let o = flr(&["sudoers", "--user", "relauto-compose", "--allow", "checksum.create", "--config", "/etc/flr/c.toml"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("/usr/bin/flr --config /etc/flr/c.toml checksum create *"), "{text}");
    std::fs::write(&f, &text).unwrap();
    let v = Command::new(visudo).arg("-cf").arg(&f).output().unwrap();
    assert!(v.status.success(), "visudo rejected:\n{text}\n{}", String::from_utf8_lossy(&v.stderr));
}

#[test]
fn refuses_unknown_or_broad_grants() {
    for bad in ["sudoers", "*", "compose *", "all"] {
        let o = flr(&["sudoers", "--user", "u", "--allow", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
    }
    let o = flr(&["sudoers", "--user", "root ALL=(ALL) ALL", "--allow", "compose"]);
    assert_eq!(o.status.code(), Some(2));
    let o = flr(&["sudoers", "--json", "--user", "u", "--allow", "checksum.verify"]);
    assert!(json(&o)["snippet"].as_str().unwrap().contains("/usr/bin/flr checksum verify *"));
}
