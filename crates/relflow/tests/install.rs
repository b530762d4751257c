//! `scripts/install.sh` as an operator runs it, into a temporary prefix, and
//! the installed worker unit's `ExecStart` run the way systemd would run it:
//! as the `relflow` user, with only the unit's environment, its `%S`
//! (StateDirectory's parent) pointing into the temp dir. The example
//! messages must become successful runs with the installed venv's
//! ansible-playbook (PATH has no other), their data under the state dir.
//! Then the units pass `systemd-analyze verify` and `security`.
//!
//! Needs root (install.sh creates the `relflow` system user, which stays)
//! and network to PyPI (the venv's ansible-core).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use relflow_testkit::{flr_binary, repo_root, run_ok};

/// Exposure levels above this (systemd-analyze's 0-100 scale; "OK" ends at
/// 49) fail the test: the units must stay hardened.
const MAX_EXPOSURE: &str = "40";

fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    run_ok(cmd, &what)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A unit's `ExecStart` words and `Environment=` pairs, with the specifiers
/// systemd would expand here.
struct Unit {
    exec_start: Vec<String>,
    env: BTreeMap<String, String>,
    user: String,
}

fn read_unit(path: &Path, state_root: &Path, instance: &str) -> Unit {
    let text = std::fs::read_to_string(path).expect("read unit");
    let expand = |v: &str| v.replace("%S", &state_root.display().to_string()).replace("%i", instance);
    let mut unit = Unit { exec_start: Vec::new(), env: BTreeMap::new(), user: String::new() };
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("ExecStart=") {
            unit.exec_start = expand(v).split_whitespace().map(String::from).collect();
        } else if let Some(v) = line.strip_prefix("Environment=") {
            let (k, v) = v.split_once('=').expect("Environment=K=V");
            unit.env.insert(k.to_string(), expand(v));
        } else if let Some(v) = line.strip_prefix("User=") {
            unit.user = v.to_string();
        }
    }
    unit
}

/// Runs `args` after the unit's ExecStart program as the unit's user, with
/// the unit's environment and a PATH that has no ansible-playbook on it.
fn as_unit(unit: &Unit, args: &[&str]) -> Output {
    // setpriv, not runuser: runuser would reset HOME to the user's passwd
    // entry, and systemd does not (the unit sets it).
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", &unit.user, "--regid", &unit.user, "--init-groups", "--"]).arg(&unit.exec_start[0]).args(args);
    cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").envs(&unit.env).current_dir("/");
    run(&mut cmd)
}

fn install(prefix: &Path, etc: &Path, bins: &Path) -> String {
    let out = run(Command::new(repo_root().join("scripts/install.sh"))
        .arg("--prefix")
        .arg(prefix)
        .arg("--sysconfdir")
        .arg(etc)
        .arg("--bin-dir")
        .arg(bins));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_installed_worker_unit_runs_the_examples_as_the_relflow_user() {
    let tmp = tempfile::tempdir().expect("tempdir");
    chmod(tmp.path(), 0o755); // the relflow user must reach the prefix
    let (prefix, etc, state) = (tmp.path().join("usr"), tmp.path().join("etc"), tmp.path().join("state"));
    let bins = tmp.path().join("bins");
    std::fs::create_dir(&bins).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_relflow"), bins.join("relflow")).unwrap();
    std::fs::copy(flr_binary(), bins.join("flr")).unwrap();

    install(&prefix, &etc, &bins);
    for file in [
        "bin/relflow",
        "bin/flr",
        "lib/relflow/venv/bin/ansible-playbook",
        "lib/systemd/system/relflow-worker@.service",
        "lib/systemd/system/relflow-bridge.service",
        "lib/systemd/system/relflow-serve.service",
        "lib/sysusers.d/relflow.conf",
        "lib/tmpfiles.d/relflow.conf",
        "share/doc/relflow/README.md",
        "share/doc/relflow/LICENSE",
    ] {
        assert!(prefix.join(file).exists(), "{file} not installed");
    }
    assert!(etc.join("relflow/relflow.toml").is_file());
    run(Command::new("id").arg("relflow"));

    // What systemd does for StateDirectory=relflow: the dir, owned by the user.
    std::fs::create_dir(&state).unwrap();
    let unit = read_unit(&prefix.join("lib/systemd/system/relflow-worker@.service"), &state, "1");
    assert_eq!(unit.user, "relflow");
    assert_eq!(unit.exec_start, [prefix.join("bin/relflow").display().to_string(), "worker".into()]);
    let data = state.join("relflow");
    std::fs::create_dir(&data).unwrap();
    run(Command::new("chown").arg("relflow:relflow").arg(&data));
    chmod(&data, 0o750);
    let messages = tmp.path().join("messages");
    std::fs::create_dir(&messages).unwrap();
    for m in ["compose-finished.json", "koji-build-complete.json"] {
        std::fs::copy(repo_root().join("examples/messages").join(m), messages.join(m)).unwrap();
    }

    as_unit(&unit, &["check"]);
    let m = |f: &str| messages.join(f).display().to_string();
    as_unit(&unit, &["publish", &m("compose-finished.json"), &m("koji-build-complete.json")]);
    as_unit(&unit, &["worker", "--drain"]);
    let listed = as_unit(&unit, &["runs", "list", "--json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).expect("runs list --json");
    let mut done: Vec<(String, String)> =
        runs.iter().map(|r| (r["rule"].as_str().unwrap().into(), r["status"].as_str().unwrap().into())).collect();
    done.sort();
    assert_eq!(
        done,
        [("compose-finished".into(), "succeeded".into()), ("koji-build-complete".into(), "succeeded".into())],
        "{runs:?}"
    );
    assert!(data.join("relflow.sqlite3").is_file(), "the run store is not in the state dir");
    assert!(!etc.join("relflow/.relflow").exists(), "data landed next to the config");

    // Idempotent: a second run keeps an edited config and the venv.
    let config = etc.join("relflow/relflow.toml");
    let edited = format!("{}\n# edited by the operator\n", std::fs::read_to_string(&config).unwrap());
    std::fs::write(&config, &edited).unwrap();
    let again = install(&prefix, &etc, &bins);
    assert!(again.contains("already has ansible-core"), "{again}");
    assert!(again.contains("left as it is"), "{again}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);

    verify_units(&prefix.join("lib/systemd/system"));
}

/// `systemd-analyze verify` prints what it dislikes and still exits 0, so
/// its stderr must be empty too; `security` fails above [`MAX_EXPOSURE`].
fn verify_units(dir: &Path) {
    let units: Vec<PathBuf> = ["relflow-worker@.service", "relflow-bridge.service", "relflow-serve.service"]
        .iter()
        .map(|u| dir.join(u))
        .collect();
    let out = run(Command::new("systemd-analyze").arg("verify").args(&units));
    assert!(out.stderr.is_empty(), "systemd-analyze verify: {}", String::from_utf8_lossy(&out.stderr));
    for unit in &units {
        let out = run(Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager", &format!("--threshold={MAX_EXPOSURE}")])
            .arg(unit));
        let text = String::from_utf8_lossy(&out.stdout);
        let score = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or("no score line");
        eprintln!("{score}");
    }
}
