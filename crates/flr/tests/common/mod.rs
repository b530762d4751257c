//! Shared test helpers: a Fedora-shaped compose tree and a way to run the binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Build `<dir>/<id>/` like pungi does: COMPOSE_ID, STATUS, metadata and
/// one ISO dir with a CHECKSUM file. Uses the productmd 1.2 fixtures,
/// rewriting the compose id.
pub fn make_compose(dir: &Path, id: &str, status: &str) -> PathBuf {
    let root = dir.join(id);
    let meta = root.join("compose/metadata");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(root.join("COMPOSE_ID"), format!("{id}\n")).unwrap();
    std::fs::write(root.join("STATUS"), format!("{status}\n")).unwrap();
    for f in ["composeinfo.json", "images.json", "rpms.json"] {
        let text = std::fs::read_to_string(format!("{FIXTURES}/compose-1.2/{f}")).unwrap();
        std::fs::write(meta.join(f), text.replace("Fedora-39-20231101.0", id)).unwrap();
    }
    let iso = root.join("compose/Server/x86_64/iso");
    std::fs::create_dir_all(&iso).unwrap();
    std::fs::write(iso.join("Fedora-Server-dvd-x86_64-39-1.5.iso"), format!("dvd image of {id}\n").repeat(1000))
        .unwrap();
    std::fs::write(iso.join("Fedora-Server-netinst-x86_64-39-1.5.iso"), b"netinst").unwrap();
    flr::checksum::create(
        &iso,
        "Fedora-Server-39-1.5-x86_64-CHECKSUM",
        flr::checksum::Algorithm::Sha256,
        false,
        false,
        None,
    )
    .unwrap();
    root
}

/// Run the flr binary with a clean environment (no sudo markers, no config).
pub fn flr(args: &[&str]) -> Output {
    flr_env(args, &[])
}

pub fn flr_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flr"));
    c.args(args).env_remove("SUDO_UID").env_remove("FLR_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Whether an external tool is installed (tests needing it are skipped otherwise).
pub fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}
