//! The RPM: `contrib/rpm/make-sources.sh` makes the source and vendored
//! crates tarballs from the committed tree, `rpmbuild -bb` builds the binary
//! package offline in a private `_topdir`, and `rpm -qlp` must list what an
//! operator needs: both binaries, the units, sysusers and tmpfiles entries,
//! the callback plugin and warm helper, the config, docs and licence.
//!
//! Needs `rpmbuild` (Debian's `rpm` package; scripts/test.sh installs it)
//! and crates.io for `cargo vendor`. This is the suite's slowest test: a
//! release build of relflow and flr from the vendored sources.

use std::path::Path;
use std::process::Command;

use relflow_testkit::{repo_root, run_ok};

fn run(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    String::from_utf8_lossy(&run_ok(cmd, &what).stdout).into_owned()
}

fn rpmbuild(top: &Path) -> Command {
    let mut cmd = Command::new("rpmbuild");
    cmd.arg("--define").arg(format!("_topdir {}", top.display()));
    // Debian's rpm has no %dist and checks build dependencies against its
    // own (empty) rpm database: the tools are there, just not as RPMs.
    cmd.args(["--define", "dist .test", "--nodeps"]);
    // The cargo of this test run (rustup's), not whatever PATH finds first.
    if let Some(cargo) = option_env!("CARGO") {
        let dir = Path::new(cargo).parent().expect("cargo's dir");
        cmd.env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()));
    }
    cmd
}

#[test]
fn rpmbuild_makes_a_package_with_everything_an_operator_needs() {
    let top = tempfile::tempdir().expect("tempdir");
    let sources = top.path().join("SOURCES");
    run(Command::new(repo_root().join("contrib/rpm/make-sources.sh")).arg(&sources));

    run(rpmbuild(top.path()).arg("-bb").arg(repo_root().join("contrib/rpm/relflow.spec")));

    let rpms: Vec<_> = walk(&top.path().join("RPMS")).into_iter().filter(|p| p.ends_with(".rpm")).collect();
    assert_eq!(rpms.len(), 1, "one binary rpm: {rpms:?}");
    let files = run(Command::new("rpm").args(["-qlp", &rpms[0]]));
    for want in [
        "/usr/bin/relflow",
        "/usr/bin/flr",
        "/usr/lib/systemd/system/relflow-worker@.service",
        "/usr/lib/systemd/system/relflow-bridge.service",
        "/usr/lib/systemd/system/relflow-serve.service",
        "/usr/lib/sysusers.d/relflow.conf",
        "/usr/lib/tmpfiles.d/relflow.conf",
        "/usr/share/relflow/ansible/callback_plugins/relflow_events.py",
        "/usr/share/relflow/ansible/relflow_warm.py",
        "/etc/relflow/relflow.toml",
        "/usr/share/doc/relflow/README.md",
        "/usr/share/licenses/relflow/LICENSE",
    ] {
        assert!(files.lines().any(|l| l == want), "{want} is not in the package:\n{files}");
    }
    let config = run(Command::new("rpm").args(["-qcp", &rpms[0]]));
    assert!(config.lines().any(|l| l == "/etc/relflow/relflow.toml"), "relflow.toml is not %config:\n{config}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}
