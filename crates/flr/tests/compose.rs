mod common;
use common::*;
use flr::compose::{self, ComposeInfo, Images, Rpms};
use std::time::Duration;

fn fixture(p: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{p}")).unwrap()
}

#[test]
fn parses_productmd_1_2() {
    let ci = ComposeInfo::from_json(&fixture("compose-1.2/composeinfo.json")).unwrap();
    assert_eq!(ci.header.kind.as_deref(), Some("productmd.composeinfo"));
    assert_eq!(ci.compose.id, "Fedora-39-20231101.0");
    assert_eq!(ci.compose.label.as_deref(), Some("RC-1.5"));
    assert!(ci.compose.is_final);
    assert_eq!(ci.release_id(), "Fedora-39");
    assert_eq!(ci.arches(), vec!["aarch64", "x86_64"]);
    assert_eq!(ci.variants["Server"].paths["isos"]["x86_64"], "Server/x86_64/iso");

    let im = Images::from_json(&fixture("compose-1.2/images.json")).unwrap();
    assert_eq!(im.list(None, None).len(), 3);
    let server = im.list(Some("Server"), Some("x86_64"));
    assert_eq!(server.len(), 2);
    assert_eq!(server[0].1.kind, "dvd");
    assert_eq!(im.list(None, Some("aarch64"))[0].1.format, "qcow2");

    let rpms = Rpms::from_json(&fixture("compose-1.2/rpms.json")).unwrap();
    assert_eq!(rpms.counts()["Everything"], 3);
}

#[test]
fn parses_legacy_files_without_type_and_with_product() {
    let ci = ComposeInfo::from_json(&fixture("legacy/composeinfo.json")).unwrap();
    assert_eq!(ci.header.kind, None);
    assert_eq!(ci.header.version, "0.3");
    assert_eq!(ci.release.name, "Fedora");
    assert_eq!(ci.release_id(), "Fedora-22");
    assert_eq!(ci.variants["Server-optional"].kind, "optional");

    let im = Images::from_json(&fixture("legacy/images.json")).unwrap();
    let img = &im.list(None, None)[0].1;
    assert_eq!(img.format, "iso"); // defaulted like productmd does
    assert_eq!(img.subvariant, "");

    let rpms = Rpms::from_json(&fixture("legacy/rpms.json")).unwrap();
    let e = &rpms.rpms["Server"]["x86_64"]["bash-0:4.3.33-1.fc22.src"]["bash-0:4.3.33-1.fc22.x86_64"];
    assert_eq!(e.category.as_deref(), Some("package"));
}

#[test]
fn wrong_metadata_type_is_refused() {
    let text = fixture("compose-1.2/images.json");
    let err = ComposeInfo::from_json(&text).unwrap_err().to_string();
    assert!(err.contains("productmd.images"), "{err}");
}

#[test]
fn status_info_and_images_via_cli() {
    let t = tempfile::tempdir().unwrap();
    let root = make_compose(t.path(), "Fedora-39-20231101.0", "FINISHED");
    let dir = root.to_str().unwrap();

    let o = flr(&["compose", "status", "--json", dir]);
    assert!(o.status.success());
    let j = json(&o);
    assert_eq!(j["status"], "FINISHED");
    assert_eq!(j["finished"], true);

    // The compose/ subdir (what pungi messages carry in `location`) works too.
    let o = flr(&["compose", "info", "--json", root.join("compose").to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!(j["compose_id"], "Fedora-39-20231101.0");
    assert_eq!(j["release_id"], "Fedora-39");
    assert_eq!(j["image_count"], 3);
    assert_eq!(j["variants"][1]["uid"], "Server");

    let o = flr(&["compose", "images", "--json", "--variant", "Server", dir]);
    assert_eq!(json(&o).as_array().unwrap().len(), 2);

    let o = flr(&["compose", "info", dir]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("compose:  Fedora-39-20231101.0"), "{text}");
}

#[test]
fn unfinished_compose_fails_with_exit_3() {
    let t = tempfile::tempdir().unwrap();
    let root = make_compose(t.path(), "Fedora-39-20231101.1", "DOOMED");
    let o = flr(&["compose", "status", "--json", root.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let j = json(&o);
    assert_eq!(j["kind"], "check_failed");
    assert!(j["error"].as_str().unwrap().contains("DOOMED"));
    // FINISHED_INCOMPLETE is usable.
    std::fs::write(root.join("STATUS"), "FINISHED_INCOMPLETE\n").unwrap();
    assert!(compose::check_status(&root).is_ok());
}

#[test]
fn wait_returns_when_finished_and_fails_when_doomed() {
    let t = tempfile::tempdir().unwrap();
    let root = make_compose(t.path(), "Fedora-39-20231101.2", "STARTED");
    let r2 = root.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(r2.join("STATUS"), "FINISHED\n").unwrap();
    });
    let r = compose::wait(&root, Duration::from_secs(600), Duration::from_millis(10)).unwrap();
    writer.join().unwrap();
    assert_eq!(r.status, "FINISHED");

    std::fs::write(root.join("STATUS"), "DOOMED\n").unwrap();
    let e = compose::wait(&root, Duration::from_secs(600), Duration::from_millis(10)).unwrap_err();
    assert_eq!(e.exit_code(), 3);

    std::fs::write(root.join("STATUS"), "STARTED\n").unwrap();
    let e = compose::wait(&root, Duration::ZERO, Duration::from_millis(1)).unwrap_err();
    assert!(e.to_string().contains("not finished"), "{e}");
}

#[test]
fn not_a_compose_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let o = flr(&["compose", "info", t.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a pungi compose"));
}

#[test]
fn compose_roots_from_config_are_enforced() {
    let t = tempfile::tempdir().unwrap();
    let allowed = t.path().join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    let inside = make_compose(&allowed, "Fedora-39-20231101.0", "FINISHED");
    let outside = make_compose(t.path(), "Fedora-39-20231101.9", "FINISHED");
    let cfg = t.path().join("flr.toml");
    std::fs::write(&cfg, format!("[paths]\ncompose_roots = [{:?}]\n", allowed)).unwrap();
    let c = cfg.to_str().unwrap();
    assert!(flr(&["--config", c, "compose", "status", inside.to_str().unwrap()]).status.success());
    let o = flr(&["--config", c, "compose", "status", outside.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("outside the allowed roots"));
    let sneaky = format!("{}/../Fedora-39-20231101.9", allowed.display());
    assert_eq!(flr(&["--config", c, "compose", "status", &sneaky]).status.code(), Some(2));
}

#[test]
fn under_sudo_a_config_is_required_and_must_be_root_owned() {
    let t = tempfile::tempdir().unwrap();
    let root = make_compose(t.path(), "Fedora-39-20231101.0", "FINISHED");
    // No config at all: under sudo, empty roots mean nothing is allowed.
    let missing = t.path().join("none.toml");
    let o = flr_env(&["compose", "status", root.to_str().unwrap()], &[("SUDO_UID", "1000")]);
    if !std::path::Path::new(flr::config::DEFAULT_CONFIG).exists() {
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("compose_roots"));
    }
    let o = flr_env(
        &["--config", missing.to_str().unwrap(), "compose", "status", root.to_str().unwrap()],
        &[("SUDO_UID", "1000")],
    );
    assert_eq!(o.status.code(), Some(2));
    // A group-writable config is refused under sudo.
    let cfg = t.path().join("flr.toml");
    std::fs::write(&cfg, format!("[paths]\ncompose_roots = [{:?}]\n", t.path())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o664)).unwrap();
    let o = flr_env(
        &["--config", cfg.to_str().unwrap(), "compose", "status", root.to_str().unwrap()],
        &[("SUDO_UID", "1000")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("owned by root"));
}

#[test]
fn config_is_not_accepted_after_the_subcommand() {
    // Sudo rules fix the subcommand prefix (`flr compose *`), so a caller can
    // only add arguments after it: --config must not be one of them.
    let t = tempfile::tempdir().unwrap();
    let root = make_compose(t.path(), "Fedora-39-20231101.0", "FINISHED");
    let cfg = t.path().join("flr.toml");
    std::fs::write(&cfg, "").unwrap();
    let o = flr(&["compose", "status", "--config", cfg.to_str().unwrap(), root.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--config"));
}
