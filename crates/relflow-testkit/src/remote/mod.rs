//! A remote host on this machine, for tests of what runs over SSH: a
//! network namespace with its own `sshd`, reachable from the test (and from
//! relflow workers and ansible the test starts) at an address of its own,
//! with automation users that log in with a key.
//!
//! ```no_run
//! use relflow_testkit::RemoteHost;
//!
//! let host = RemoteHost::start();
//! let user = host.add_user("compose");
//! // A root-owned place for what sudo rules may name (binaries, configs).
//! let flr = host.install("bin/flr", std::fs::read("target/debug/flr").unwrap(), 0o755);
//! host.install_sudoers(&user, &format!("{} ALL=(root) NOPASSWD: {} checksum create *\n", user.name(), flr.display()));
//! let out = host.ssh(&user, &["sudo", "-n", flr.to_str().unwrap(), "--version"]);
//! assert!(out.status.success());
//! // For ansible: an inventory line that logs in as `user`.
//! let line = host.inventory_line("compose01", &user);
//! ```
//!
//! What a test gets, and what it must know:
//!
//! * **Network.** A namespace `relflow-<unique>` joined to this machine by a
//!   veth pair in a /30 of 10.200.0.0/14 that no interface here overlaps
//!   (or the addresses the test gives [`RemoteHostBuilder::addresses`]).
//!   [`RemoteHost::address`] is the namespace's end, where its `sshd`
//!   listens on port 22. Nothing reaches beyond the two ends.
//! * **sshd.** `/usr/sbin/sshd -D` inside the namespace, on a config of its
//!   own: a fresh host key, keys only (no passwords, no PAM, no root login,
//!   no forwarding), and `AllowGroups` of a group only this host's users
//!   are in, so no other account of the machine can log in through it. The
//!   host key is in a known_hosts file of its own, so clients check it
//!   strictly (see [`RemoteHost::ssh_options`]). Its log is
//!   [`RemoteHost::sshd_log`].
//! * **Shared with the machine.** The namespace has its own network only:
//!   the filesystem, `/etc/passwd` and `/etc/sudoers.d` are the machine's.
//!   So users are real system users (`ra-<tag>-<unique>`, homes inside the
//!   host's temp dir), sudo rules are real drop-ins
//!   (`/etc/sudoers.d/relflow-test-<user>`, checked with `visudo -cf`
//!   first), and both are removed again on drop. `/run/sshd` (sshd's
//!   privilege separation dir) is created if missing and left in place.
//! * **Root-owned files.** [`RemoteHost::install`] puts files under a
//!   root-owned directory (0755) the automation users cannot write, the
//!   kind of place a sudoers rule may name a binary or config in.
//! * **Processes.** [`RemoteHost::processes`] lists what runs in the
//!   namespace besides the listening sshd: logins, their commands, and
//!   whatever they started, sudo'd ones included.
//! * **Cleanup on drop**, in this order: the sudoers drop-ins (nothing can
//!   sudo any more), every process in the namespace and every process of
//!   its users (SIGKILL, by pid), the users and their group, the veth pair
//!   and namespace, the temp dir. A test killed by SIGKILL cannot run
//!   drop: then `ip netns list`, `getent passwd | grep ^ra-` and
//!   `ls /etc/sudoers.d/relflow-test-*` show what to remove by hand.
//!
//! Needs root, and `ip` (iproute2), `sshd` and `ssh` (openssh-server,
//! openssh-client), `sudo`, `useradd` (passwd); `scripts/test.sh` installs
//! them. Everything here blocks; from async code, call it from
//! `spawn_blocking`.

mod netns;
mod users;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use netns::Netns;
pub use users::AutomationUser;

/// How long sshd may take to listen before the test gives up.
const SSHD_READY: Duration = Duration::from_secs(30);

/// Options for [`RemoteHost`]; [`RemoteHost::start`] uses the defaults.
#[derive(Debug, Default, Clone)]
pub struct RemoteHostBuilder {
    addresses: Option<(Ipv4Addr, Ipv4Addr)>,
}

impl RemoteHostBuilder {
    /// Use these addresses, this machine's end and the host's, in one /30
    /// (e.g. 10.200.0.1 and 10.200.0.2), instead of a free pair.
    pub fn addresses(mut self, ours: Ipv4Addr, theirs: Ipv4Addr) -> Self {
        self.addresses = Some((ours, theirs));
        self
    }

    /// Creates the namespace and starts sshd; returns once it listens.
    pub fn start(self) -> RemoteHost {
        let unique = crate::unique_suffix().replace('_', "");
        let dir = tempfile::Builder::new().prefix("relflow-remote-").tempdir().expect("temp dir");
        chmod(dir.path(), 0o755); // the users' homes are inside
        for (sub, mode) in [("home", 0o755), ("root", 0o755), ("keys", 0o700), ("sshd", 0o700)] {
            std::fs::create_dir(dir.path().join(sub)).expect("create host dirs");
            chmod(&dir.path().join(sub), mode);
        }
        let (ours, theirs) = self.addresses.unwrap_or_else(|| netns::free_pair(&unique));
        // Each step owns what it made, so a panic half-way still cleans up.
        let netns = Netns::create(&format!("relflow-{unique}"), &netns::link_name(&unique), ours, theirs);
        let group = format!("rfssh-{unique}");
        users::add_group(&group);
        let mut host = RemoteHost {
            unique,
            group,
            users: Mutex::new(Vec::new()),
            sudoers: Mutex::new(Vec::new()),
            sshd: None,
            netns,
            dir,
        };
        host.start_sshd();
        host
    }
}

/// A remote host; see the module docs. Dropped = everything it added to
/// the machine removed.
#[derive(Debug)]
pub struct RemoteHost {
    unique: String,
    /// sshd's `AllowGroups`.
    group: String,
    users: Mutex<Vec<AutomationUser>>,
    sudoers: Mutex<Vec<PathBuf>>,
    sshd: Option<Child>,
    netns: Netns,
    dir: tempfile::TempDir,
}

impl RemoteHost {
    /// A host with a free pair of addresses.
    pub fn start() -> RemoteHost {
        RemoteHostBuilder::default().start()
    }

    /// Options before starting.
    pub fn builder() -> RemoteHostBuilder {
        RemoteHostBuilder::default()
    }

    /// The host's address (sshd listens on port 22 there).
    pub fn address(&self) -> Ipv4Addr {
        self.netns.addr
    }

    /// This machine's end of the veth pair: where connections from the test
    /// come from, as the host sees them.
    pub fn peer_address(&self) -> Ipv4Addr {
        self.netns.host_addr
    }

    /// The network namespace's name (`ip netns exec <name> ...`).
    pub fn netns(&self) -> &str {
        &self.netns.name
    }

    /// A new automation user, `ra-<tag>-<unique>` (`tag`: up to 10 lowercase
    /// letters and digits), with a key the test holds.
    pub fn add_user(&self, tag: &str) -> AutomationUser {
        assert!(
            !tag.is_empty() && tag.len() <= 10 && tag.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "user tag {tag:?}: 1 to 10 lowercase letters and digits"
        );
        let name = format!("ra-{tag}-{}", self.unique);
        let key = self.dir.path().join("keys").join(&name);
        keygen(&key, &format!("relflow test key for {name}"));
        let pubkey = read(&key.with_extension("pub"));
        let user = users::add_user(&name, &self.group, &self.dir.path().join("home").join(&name), key, &pubkey);
        self.users.lock().expect("users lock").push(user.clone());
        user
    }

    /// Writes `contents` to `rel` under the host's root-owned directory
    /// (parents created 0755), mode `mode`; returns the absolute path.
    pub fn install(&self, rel: &str, contents: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        assert!(!rel.starts_with('/') && !rel.split('/').any(|c| c == ".."), "{rel:?} must stay inside");
        let path = self.root_dir().join(rel);
        let parent = path.parent().expect("a file under the root dir");
        std::fs::create_dir_all(parent).expect("create dirs");
        chmod(parent, 0o755);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        chmod(&path, mode);
        path
    }

    /// The root-owned directory (0755) that [`install`](Self::install) writes to.
    pub fn root_dir(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Installs `text` as the sudoers drop-in for `user`
    /// (`/etc/sudoers.d/relflow-test-<user>`, 0440), after `visudo -cf`
    /// accepted it (else panics with visudo's complaint). Removed on drop.
    pub fn install_sudoers(&self, user: &AutomationUser, text: &str) -> PathBuf {
        let path = users::install_sudoers(&format!("relflow-test-{}", user.name()), text);
        self.sudoers.lock().expect("sudoers lock").push(path.clone());
        path
    }

    /// `ssh` options that log in as `user` with its key and check the host
    /// key strictly against this host's own known_hosts; nothing from the
    /// machine's or root's ssh config files, no agent, no prompts.
    pub fn ssh_options(&self, user: &AutomationUser) -> Vec<String> {
        let known = self.known_hosts();
        [
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            user.key().display().to_string(),
            "-l".into(),
            user.name().into(),
        ]
        .into_iter()
        .chain(self.common_options(&known).into_iter().flat_map(|o| ["-o".to_string(), o]))
        .collect()
    }

    /// Runs `argv` on the host as `user`, over SSH (each word quoted for the
    /// remote shell), and waits for it.
    pub fn ssh(&self, user: &AutomationUser, argv: &[&str]) -> Output {
        let command: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        Command::new("ssh")
            .args(self.ssh_options(user))
            .arg(self.address().to_string())
            .arg(command.join(" "))
            .stdin(Stdio::null())
            .output()
            .expect("run ssh (openssh-client)")
    }

    /// An ansible INI inventory line for host `alias` that logs in as `user`
    /// (its key, this host's known_hosts, `/usr/bin/python3` on the host).
    pub fn inventory_line(&self, alias: &str, user: &AutomationUser) -> String {
        let args: Vec<String> = self.common_options(&self.known_hosts()).iter().map(|o| format!("-o {o}")).collect();
        format!(
            "{alias} ansible_host={} ansible_user={} ansible_ssh_private_key_file={} \
             ansible_python_interpreter=/usr/bin/python3 ansible_ssh_common_args='{}'",
            self.address(),
            user.name(),
            user.key().display(),
            args.join(" ")
        )
    }

    /// Processes in the namespace other than the listening sshd: `(pid,
    /// command line with spaces for NULs)`.
    pub fn processes(&self) -> Vec<(i32, String)> {
        let listener = self.sshd.as_ref().map(|c| c.id() as i32);
        let pids = self.netns.pids().into_iter().filter(|p| Some(*p) != listener);
        pids.filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ").trim_end().to_owned();
            (!text.is_empty()).then_some((pid, text))
        })
        .collect()
    }

    /// What sshd logged so far (connections, refused logins).
    pub fn sshd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd/sshd.log")).unwrap_or_default()
    }

    fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("sshd/known_hosts")
    }

    /// `-o` options (without the `-o`) both `ssh` and ansible use.
    fn common_options(&self, known_hosts: &Path) -> Vec<String> {
        vec![
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".into(),
            "StrictHostKeyChecking=yes".into(),
            "IdentitiesOnly=yes".into(),
            "BatchMode=yes".into(),
        ]
    }

    fn start_sshd(&mut self) {
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (sshd's privilege separation dir)");
        let dir = self.dir.path().join("sshd");
        let host_key = dir.join("ssh_host_ed25519_key");
        keygen(&host_key, "relflow test host");
        let host_pub = read(&host_key.with_extension("pub"));
        std::fs::write(self.known_hosts(), format!("{} {}", self.address(), host_pub)).expect("write known_hosts");
        let config = dir.join("sshd_config");
        std::fs::write(&config, sshd_config(self.address(), &host_key, &dir, &self.group)).expect("write sshd_config");
        let log = std::fs::File::create(dir.join("sshd.log")).expect("create sshd.log");
        let child = self
            .netns
            .command("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run sshd (openssh-server)");
        self.sshd = Some(child);
        let addr = SocketAddr::from((self.address(), 22));
        let started = std::time::Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            let exited = self.sshd.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "sshd exited ({exited:?}):\n{}", self.sshd_log());
            assert!(started.elapsed() < SSHD_READY, "sshd does not listen on {addr}:\n{}", self.sshd_log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs every process in the namespace and of the host's users,
    /// until none is left (a dying login may still fork).
    fn kill_everything(&mut self) {
        let uids: Vec<u32> = self.users.lock().map(|u| u.iter().map(|u| u.uid).collect()).unwrap_or_default();
        for _ in 0..100 {
            let mut pids = self.netns.pids();
            pids.extend(uids.iter().flat_map(|&uid| users::processes_of(uid)));
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        for path in self.sudoers.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default() {
            let _ = std::fs::remove_file(path);
        }
        self.kill_everything();
        for user in self.users.lock().map(|mut u| std::mem::take(&mut *u)).unwrap_or_default() {
            users::del_user(&user.name);
        }
        users::del_group(&self.group);
        // The namespace and veth pair go with `netns`, the files with `dir`.
    }
}

fn sshd_config(addr: Ipv4Addr, host_key: &Path, dir: &Path, group: &str) -> String {
    format!(
        "# A test host's sshd (relflow_testkit::RemoteHost): keys only, its own users only.\n\
         ListenAddress {addr}:22\n\
         HostKey {}\n\
         PidFile {}\n\
         AuthorizedKeysFile .ssh/authorized_keys\n\
         AllowGroups {group}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         PermitRootLogin no\n\
         StrictModes yes\n\
         AllowTcpForwarding no\n\
         AllowAgentForwarding no\n\
         X11Forwarding no\n\
         PermitUserEnvironment no\n\
         PrintMotd no\n\
         # Many ansible runs log in at once.\n\
         MaxStartups 200\n\
         MaxSessions 50\n\
         Subsystem sftp internal-sftp\n\
         LogLevel VERBOSE\n",
        host_key.display(),
        dir.join("sshd.pid").display(),
    )
}

/// A new ed25519 key pair at `path` (and `path.pub`), no passphrase.
fn keygen(path: &Path, comment: &str) {
    let path_s = path.to_str().expect("a UTF-8 temp dir");
    crate::run(
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path_s]),
        "ssh-keygen (openssh-client)",
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// `word` as one word for a POSIX shell: single-quoted, `'` as `'\''`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}
