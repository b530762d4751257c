mod common;
use common::*;
use std::path::Path;

fn sync_json(compose: &Path, target: &Path, extra: &[&str]) -> (std::process::Output, Option<serde_json::Value>) {
    let mut args = vec!["sync", "--json", compose.to_str().unwrap(), target.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = flr(&args);
    let j = serde_json::from_slice(&o.stdout).ok();
    (o, j)
}

#[test]
fn sync_publishes_and_is_idempotent() {
    if !have("rsync") {
        panic!("rsync not installed: scripts/test.sh installs it");
    }
    let t = tempfile::tempdir().unwrap();
    let composes = t.path().join("koji/compose");
    let target = t.path().join("stage");
    std::fs::create_dir_all(&composes).unwrap();
    std::fs::create_dir_all(&target).unwrap();
    let c1 = make_compose(&composes, "Fedora-39-20231101.0", "FINISHED");

    // Dry run changes nothing.
    let (o, j) = sync_json(&c1, &target, &["--dry-run"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = j.unwrap();
    assert_eq!(j["link_action"], "would-create");
    assert!(std::fs::read_dir(&target).unwrap().next().is_none());

    let (o, j) = sync_json(&c1, &target, &["--verify-checksums"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = j.unwrap();
    assert_eq!(j["link_action"], "created");
    assert!(j["changes"].as_u64().unwrap() > 0);
    assert_eq!(std::fs::read_link(target.join("latest-Fedora-39")).unwrap(), Path::new("Fedora-39-20231101.0"));
    assert!(target.join("latest-Fedora-39/compose/Server/x86_64/iso/Fedora-Server-39-1.5-x86_64-CHECKSUM").is_file());

    // Second run: nothing to do.
    let (o, j) = sync_json(&c1, &target, &[]);
    assert!(o.status.success());
    let j = j.unwrap();
    assert_eq!(j["link_action"], "unchanged");
    assert_eq!(j["changes"], 0);

    // A newer compose moves the link atomically; the old one stays.
    let c2 = make_compose(&composes, "Fedora-39-20231102.0", "FINISHED_INCOMPLETE");
    let (o, j) = sync_json(&c2.join("compose"), &target, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(j.unwrap()["link_action"], "updated");
    assert_eq!(std::fs::read_link(target.join("latest-Fedora-39")).unwrap(), Path::new("Fedora-39-20231102.0"));
    assert!(target.join("Fedora-39-20231101.0/COMPOSE_ID").is_file());

    // Custom release name.
    let (o, _) = sync_json(&c2, &target, &["--release", "Fedora-39-RC"]);
    assert!(o.status.success());
    assert!(target.join("latest-Fedora-39-RC").is_symlink());
    let (o, _) = sync_json(&c2, &target, &["--release", "../evil"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sync_refuses_unfinished_or_corrupt_composes() {
    if !have("rsync") {
        panic!("rsync not installed: scripts/test.sh installs it");
    }
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("stage");
    std::fs::create_dir_all(&target).unwrap();
    let c = make_compose(t.path(), "Fedora-39-20231103.0", "STARTED");
    let (o, j) = sync_json(&c, &target, &[]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(j.unwrap()["kind"], "check_failed");
    assert!(std::fs::read_dir(&target).unwrap().next().is_none());

    std::fs::write(c.join("STATUS"), "FINISHED\n").unwrap();
    std::fs::write(c.join("compose/Server/x86_64/iso/Fedora-Server-netinst-x86_64-39-1.5.iso"), b"tampered").unwrap();
    let (o, _) = sync_json(&c, &target, &["--verify-checksums"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("size-mismatch"));
    assert!(!target.join("latest-Fedora-39").exists());
}

#[test]
fn sync_target_must_be_inside_sync_roots() {
    let t = tempfile::tempdir().unwrap();
    let c = make_compose(t.path(), "Fedora-39-20231101.0", "FINISHED");
    let allowed = t.path().join("stage");
    let other = t.path().join("etc");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let cfg = t.path().join("flr.toml");
    std::fs::write(&cfg, format!("[paths]\ncompose_roots = [{:?}]\nsync_roots = [{:?}]\n", t.path(), allowed)).unwrap();
    let o = flr(&["--config", cfg.to_str().unwrap(), "sync", c.to_str().unwrap(), other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("outside the allowed roots"));
}
