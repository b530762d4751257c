//! The two Ansible roles in contrib/ansible, applied for real with the
//! project's ansible-playbook over SSH to a test host (a network namespace
//! with its own sshd, logged into as a deploy user with sudo, as Fedora's
//! infrastructure applies roles), then checked on the host: the files, the
//! users, the sudoers drop-in (`visudo -cf`), the units (`systemd-analyze
//! verify`); a second run and a `--check` run report `changed=0`.
//!
//! The namespace shares this machine's filesystem and users, so the roles
//! install into a temp prefix and sysconfdir, the automation user is a
//! unique name, and both it and its sudoers drop-in are removed at the end.
//! systemd does not run here: `relflow_manage_services: false`.

use std::path::Path;
use std::process::Command;

use relflow_testkit::{ansible_playbook, flr_binary, repo_root, run_ok, RemoteHost};

/// stdout and stderr of `cmd`, which must succeed.
fn run(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = run_ok(cmd, &what);
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Removes what the automation-user role made on this machine.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/etc/sudoers.d/relflow-{}", self.0));
        let _ = Command::new("userdel").args(["--remove", &self.0]).output();
    }
}

/// `changed=N` of the one host in a PLAY RECAP.
fn changed(recap: &str) -> u32 {
    let line = recap.lines().rev().find(|l| l.contains("changed=")).expect("a PLAY RECAP");
    let n = line.split("changed=").nth(1).expect("changed=").split_whitespace().next().unwrap();
    n.parse().expect("a number")
}

#[test]
fn both_roles_apply_over_ssh_and_a_second_run_changes_nothing() {
    let host = RemoteHost::start();
    let deploy = host.add_user("deploy");
    host.install_sudoers(&deploy, &format!("{} ALL=(ALL) NOPASSWD: ALL\n", deploy.name()));

    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (prefix, etc, bins) = (tmp.path().join("usr"), tmp.path().join("etc"), tmp.path().join("bins"));
    std::fs::create_dir(&bins).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_relflow"), bins.join("relflow")).unwrap();
    std::fs::copy(flr_binary(), bins.join("flr")).unwrap();
    let auto = format!("rr-auto-{}", std::process::id());
    let _cleanup = Cleanup(auto.clone());
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJlbGZsb3ctcm9sZS10ZXN0LWtleS0wMDAwMDAwMDAw relflow-role-test";

    let inventory = tmp.path().join("inventory");
    std::fs::write(&inventory, format!("[relflow]\n{}\n", host.inventory_line("relflow01", &deploy))).unwrap();
    let vars = serde_json::json!({
        "relflow_install_method": "script",
        "relflow_source_dir": repo_root(),
        "relflow_bin_dir": bins,
        "relflow_prefix": prefix,
        "relflow_sysconfdir": etc,
        "relflow_system_ansible": true,
        "relflow_manage_services": false,
        "relflow_workers": 3,
        "relflow_ansible": {"playbook_cmd": ansible_playbook(), "inventory": "localhost,"},
        "relflow_worker": {"concurrency": 2, "retry_delay": "10s"},
        "relflow_http": {"listen": "127.0.0.1:8088"},
        "relflow_http_token": "role-test-token",
        "relflow_playbooks_src": repo_root().join("examples/playbooks"),
        "relflow_rules": [{
            "name": "compose-finished",
            "topic": "org.fedoraproject.*.pungi.compose.status.change",
            "when": "msg.status in [\"FINISHED\", \"FINISHED_INCOMPLETE\"]",
            "playbook": "compose_finished.yml",
            "retries": 2,
        }],
        "relflow_automation_user": auto,
        "relflow_automation_home": tmp.path().join("home").join(&auto),
        "relflow_automation_authorized_key": key,
        "relflow_automation_allow": ["checksum.create", "compose"],
        "relflow_flr_install_method": "copy",
        "relflow_flr_src": bins.join("flr"),
        "relflow_flr_path": prefix.join("bin/flr"),
    });
    let vars_file = tmp.path().join("vars.json");
    std::fs::write(&vars_file, vars.to_string()).unwrap();
    let site = tmp.path().join("site.yml");
    std::fs::write(
        &site,
        "- hosts: relflow\n  become: true\n  gather_facts: false\n  roles:\n    - relflow\n    - relflow_automation_user\n",
    )
    .unwrap();
    // ansible refuses ANSIBLE_CONFIG=/dev/null (no extension): a cfg of our own.
    let cfg = tmp.path().join("ansible.cfg");
    std::fs::write(&cfg, "[defaults]\nhost_key_checking = True\nnocows = True\nretry_files_enabled = False\n").unwrap();
    let playbook = |extra: &[&str]| {
        run(Command::new(ansible_playbook())
            .arg("-i")
            .arg(&inventory)
            .arg("-e")
            .arg(format!("@{}", vars_file.display()))
            .args(extra)
            .arg(&site)
            .env("ANSIBLE_ROLES_PATH", repo_root().join("contrib/ansible/roles"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_CONFIG", &cfg))
    };

    let first = playbook(&[]);
    assert!(changed(&first) > 0, "{first}");
    check_host(&prefix, &etc, &auto, key, tmp.path());

    let second = playbook(&[]);
    assert_eq!(changed(&second), 0, "second run:\n{second}");
    let check = playbook(&["--check"]);
    assert_eq!(changed(&check), 0, "--check run:\n{check}");
}

fn check_host(prefix: &Path, etc: &Path, auto: &str, key: &str, tmp: &Path) {
    let config = std::fs::read_to_string(etc.join("relflow/relflow.toml")).expect("relflow.toml");
    assert!(config.contains("name = \"compose-finished\""), "{config}");
    assert!(config.contains(&format!("token_file = \"{}\"", etc.join("relflow/http-token").display())), "{config}");
    let out = run(Command::new(prefix.join("bin/relflow"))
        .arg("--config")
        .arg(etc.join("relflow/relflow.toml"))
        .arg("check"));
    assert!(out.contains("compose-finished"), "{out}");
    assert!(etc.join("relflow/playbooks/compose_finished.yml").is_file());

    let token = etc.join("relflow/http-token");
    let meta = std::fs::metadata(&token).expect("http-token");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o640);
    assert_eq!(std::fs::read_to_string(&token).unwrap(), "role-test-token\n");

    let units = prefix.join("lib/systemd/system");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(["relflow-worker@.service", "relflow-bridge.service", "relflow-serve.service"].map(|u| units.join(u)))
        .output()
        .expect("systemd-analyze");
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    run(Command::new("id").arg(auto));
    let keys = tmp.join("home").join(auto).join(".ssh/authorized_keys");
    assert_eq!(std::fs::read_to_string(&keys).expect("authorized_keys"), format!("{key}\n"));
    let sudoers = format!("/etc/sudoers.d/relflow-{auto}");
    run(Command::new("visudo").args(["-cf", &sudoers]));
    let rules = run(Command::new("sudo").args(["-l", "-U", auto]));
    let flr = prefix.join("bin/flr").display().to_string();
    assert!(rules.contains(&format!("{flr} checksum create")), "{rules}");
    assert!(!rules.contains("(ALL) ALL"), "{rules}");
}
