//! The machine-wide things a remote host adds (the namespace shares the
//! filesystem and `/etc/passwd` with this machine): automation users, the
//! group sshd admits, sudoers drop-ins. Each is recorded so the host can
//! remove it again, however the test ended.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A login on the remote host: a system user with its own home (inside the
/// host's temp dir) and an ed25519 key only the test's SSH client has.
#[derive(Debug, Clone)]
pub struct AutomationUser {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) home: PathBuf,
    pub(crate) key: PathBuf,
}

impl AutomationUser {
    /// The login name (`ra-<tag>-<unique>`), also `SUDO_USER` under sudo.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its uid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Its home directory (ansible's remote temp files go under it).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The private key that logs in as this user (mode 0600, root's).
    pub fn key(&self) -> &Path {
        &self.key
    }
}

/// `useradd` and friends take a lock on `/etc/passwd`; parallel tests
/// adding users at once make one of them fail with "cannot lock": retry.
fn shadow_tool(program: &str, args: &[&str]) -> Output {
    let mut last = None;
    for _ in 0..50 {
        let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if out.status.success() {
            return out;
        }
        last = Some(out);
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = last.expect("tried at least once");
    panic!("{program} {args:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
}

/// Creates `group` (sshd's `AllowGroups`: only the host's own users log in).
pub(crate) fn add_group(group: &str) {
    shadow_tool("groupadd", &[group]);
}

pub(crate) fn del_group(group: &str) {
    let _ = Command::new("groupdel").arg(group).output();
}

/// Creates user `name` in `group`, home `home` (owned by it, 0700), no
/// password but not locked (sshd refuses locked accounts even for keys),
/// and authorizes `pubkey` for it.
pub(crate) fn add_user(name: &str, group: &str, home: &Path, key: PathBuf, pubkey: &str) -> AutomationUser {
    let home_s = home.to_str().expect("a UTF-8 temp dir");
    shadow_tool(
        "useradd",
        &["--create-home", "--home-dir", home_s, "--shell", "/bin/sh", "--groups", group, "--password", "*", name],
    );
    let id = String::from_utf8_lossy(&shadow_tool("id", &["-u", name]).stdout).trim().to_owned();
    let uid: u32 = id.parse().unwrap_or_else(|_| panic!("id -u {name} said {id:?}"));
    let gid = std::fs::metadata(home).map(|m| std::os::unix::fs::MetadataExt::gid(&m)).expect("home exists");
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).expect("create ~/.ssh");
    std::fs::write(ssh.join("authorized_keys"), pubkey).expect("write authorized_keys");
    for (path, mode) in [(home.to_path_buf(), 0o700), (ssh.clone(), 0o700), (ssh.join("authorized_keys"), 0o600)] {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown to the automation user");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    AutomationUser { name: name.to_owned(), uid, home: home.to_path_buf(), key }
}

/// Removes the user (its processes must be gone) and its mail spool.
pub(crate) fn del_user(name: &str) {
    let _ = Command::new("userdel").args(["--remove", name]).output();
}

/// Checks `text` with `visudo -cf`, then installs it as
/// `/etc/sudoers.d/<name>` (0440), via a file sudo ignores (it has a dot)
/// and a rename, so sudo never reads half a rule. Panics if visudo refuses.
pub(crate) fn install_sudoers(name: &str, text: &str) -> PathBuf {
    let dir = Path::new("/etc/sudoers.d");
    let target = dir.join(name);
    let staged = dir.join(format!("{name}.staged"));
    std::fs::write(&staged, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", staged.display()));
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o440)).expect("chmod 0440");
    let check = Command::new("visudo").arg("-cf").arg(&staged).output().expect("run visudo (package sudo)");
    if !check.status.success() {
        let _ = std::fs::remove_file(&staged);
        panic!(
            "visudo -cf refused the sudoers drop-in:\n{text}\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    std::fs::rename(&staged, &target).expect("install the sudoers drop-in");
    target
}

/// Pids of live processes owned by `uid`.
pub(crate) fn processes_of(uid: u32) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    entries
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            (e.metadata().ok()?.uid() == uid).then_some(pid)
        })
        .collect()
}
