//! Where the repository, the shared fixtures and the project's tools are.

use std::path::PathBuf;

/// The workspace root (where `Cargo.toml`, `.venv` and `examples/` are).
pub fn repo_root() -> PathBuf {
    // This crate is always built from its place in the workspace (a path
    // dependency), so its manifest dir is `<root>/crates/relflow-testkit`.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The shared fixtures: `$RELFLOW_FIXTURES`, else `shared/fixtures` beside
/// the repository (they are not in it; see DESIGN.md, "Fixtures").
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("RELFLOW_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("../shared/fixtures"),
    }
}

/// A file or directory of the shared fixtures, e.g.
/// `fixture("fedmsg-crypto/keys/ca.crt")`; panics if it is not there.
pub fn fixture(rel: &str) -> PathBuf {
    let path = fixtures_dir().join(rel);
    assert!(path.exists(), "fixture {} not found (set RELFLOW_FIXTURES to the fixtures dir)", path.display());
    path
}

/// The `ansible-playbook` tests run: `$RELFLOW_ANSIBLE_PLAYBOOK`, else the
/// repository's `.venv/bin/ansible-playbook` (scripts/setup.sh makes it).
pub fn ansible_playbook() -> PathBuf {
    let path = match std::env::var_os("RELFLOW_ANSIBLE_PLAYBOOK") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join(".venv/bin/ansible-playbook"),
    };
    assert!(path.is_file(), "{} not found: run scripts/setup.sh or set RELFLOW_ANSIBLE_PLAYBOOK", path.display());
    path
}

/// The `flr` binary, for tests outside the flr crate (which cannot name
/// another package's binary): `$RELFLOW_FLR`, else built now with
/// `cargo build -p flr --bin flr` (a no-op when it is fresh; cargo's lock
/// is free while tests run) and found from cargo's own report.
pub fn flr_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RELFLOW_FLR") {
        return PathBuf::from(p);
    }
    // CARGO is set for every crate cargo compiles: the cargo running the tests.
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = crate::run(
        std::process::Command::new(cargo)
            .args(["build", "--quiet", "-p", "flr", "--bin", "flr", "--message-format=json"])
            .current_dir(repo_root()),
        "cargo build -p flr",
    );
    let executable = out.lines().filter(|l| l.contains(r#""kind":["bin"]"#)).find_map(|l| {
        let start = l.find(r#""executable":""#)? + r#""executable":""#.len();
        Some(PathBuf::from(&l[start..start + l[start..].find('"')?]))
    });
    executable.expect("cargo reported no flr executable")
}

/// The Python with fedora-messaging and the schema packages:
/// `$RELFLOW_PYTHON`, else the repository's `.venv/bin/python`
/// (`RELFLOW_TEST_PY=1 scripts/setup.sh` installs them there).
pub fn venv_python() -> PathBuf {
    let path = match std::env::var_os("RELFLOW_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join(".venv/bin/python"),
    };
    assert!(
        path.exists(),
        "{} not found: run RELFLOW_TEST_PY=1 scripts/setup.sh or set RELFLOW_PYTHON",
        path.display()
    );
    path
}
