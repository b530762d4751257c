//! Roots per automation user, as sudo runs flr (SUDO_UID and SUDO_USER set),
//! compose URLs for `checksum create`, and the shipped example config
//! against the locations real pungi messages carry.

mod common;
use common::*;
use std::path::Path;

/// A config (root-owned, 0644, as flr demands under sudo) with a section
/// for `alice` only.
fn config(dir: &Path, alice: &Path, everyone: &Path) -> String {
    let text = format!(
        "[paths]\ncompose_roots = [{everyone:?}]\n\n[users.alice]\ncompose_roots = [{alice:?}]\n\
         checksum_roots = [{alice:?}]\n\n[compose.url_map]\n\"http://composes.test/compose/\" = {alice:?}\n"
    );
    let path = dir.join("flr.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn as_user(user: &str, args: &[&str]) -> std::process::Output {
    flr_env(args, &[("SUDO_UID", "1000"), ("SUDO_USER", user)])
}

#[test]
fn each_sudo_caller_gets_its_own_roots() {
    let t = tempfile::tempdir().unwrap();
    let (alice, everyone) = (t.path().join("alice"), t.path().join("everyone"));
    let mine = make_compose(&alice, "Fedora-39-20231101.0", "FINISHED");
    let theirs = make_compose(&everyone, "Fedora-39-20231101.1", "FINISHED");
    let cfg = config(t.path(), &alice, &everyone);
    let status =
        |user: &str, dir: &Path| as_user(user, &["--config", &cfg, "compose", "status", dir.to_str().unwrap()]);

    assert!(status("alice", &mine).status.success(), "{}", String::from_utf8_lossy(&status("alice", &mine).stderr));
    let o = status("alice", &theirs);
    assert_eq!(o.status.code(), Some(2), "alice's section replaces [paths]");
    assert!(String::from_utf8_lossy(&o.stderr).contains("outside the allowed roots"));
    assert!(status("bob", &theirs).status.success(), "bob has no section: [paths]");
    assert_eq!(status("bob", &mine).status.code(), Some(2));

    // checksum create: alice may write in her tree; bob has no checksum_roots.
    let iso = mine.join("compose/Server/x86_64/iso");
    let create = |user: &str| {
        let args = ["--config", &cfg, "checksum", "create", "--json", "--force", iso.to_str().unwrap()];
        as_user(user, &args)
    };
    assert!(create("alice").status.success(), "{}", String::from_utf8_lossy(&create("alice").stderr));
    let o = create("bob");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("via sudo for bob but [paths] checksum_roots is not set"), "{err}");
}

#[test]
fn checksum_create_maps_compose_urls_and_refuses_escapes() {
    let t = tempfile::tempdir().unwrap();
    let alice = t.path().join("alice");
    let compose = make_compose(&alice, "Fedora-39-20231101.0", "FINISHED");
    let cfg = config(t.path(), &alice, &t.path().join("everyone"));
    let iso = compose.join("compose/Server/x86_64/iso");
    std::fs::remove_file(iso.join("Fedora-Server-39-1.5-x86_64-CHECKSUM")).unwrap();

    let url = "http://composes.test/compose//Fedora-39-20231101.0/compose/Server/x86_64/iso";
    let o = as_user("alice", &["--config", &cfg, "checksum", "create", "--json", url]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o)["action"], "created");
    assert!(iso.join("CHECKSUM").is_file());

    let escape = "http://composes.test/compose/Fedora-39-20231101.0/../../../../etc";
    let o = as_user("alice", &["--config", &cfg, "checksum", "create", "--json", escape]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a plain relative path"));
    let o = as_user("alice", &["--config", &cfg, "checksum", "create", "https://elsewhere.test/x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no [compose.url_map] entry"));
}

#[test]
fn the_example_config_maps_every_pungi_location_under_its_compose_roots() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flr/flr.toml"));
    let mut cfg = flr::config::Config::parse(&text.unwrap()).unwrap();
    cfg.via_sudo = true;
    cfg.caller = Some("relauto-compose".into());
    let roots = cfg.roots_for(flr::config::RootKind::Compose).unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(relflow_testkit::fixture("messages")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.contains(".pungi.") {
            continue;
        }
        let message: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
        let Some(location) = message["msg"]["location"].as_str() else { continue };
        let path = cfg.resolve_location(location).unwrap_or_else(|e| panic!("{name}: {location}: {e}"));
        assert!(roots.iter().any(|r| path.starts_with(r)), "{name}: {location} -> {}", path.display());
        seen += 1;
    }
    assert!(seen >= 3, "the fixtures carry pungi locations ({seen} seen)");
}
