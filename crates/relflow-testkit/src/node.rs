//! A RabbitMQ node owned by the test: started from the installed
//! `rabbitmq-server`, but sharing nothing with the machine's broker.
//!
//! What keeps it apart from the shared broker (Debian's package reads
//! `/etc/rabbitmq/rabbitmq-env.conf`, which names the node `rabbit@localhost`,
//! and `/etc/rabbitmq/rabbitmq.conf`, which listens on 5672):
//!
//! * `RABBITMQ_CONF_ENV_FILE` and `RABBITMQ_CONFIG_FILE` point at files in
//!   the node's temp dir, so neither file of `/etc/rabbitmq` is read;
//! * its own node name (`relflow-test-<pid>-<n>@localhost`), AMQP port and
//!   distribution port (bound to 127.0.0.1), data and log dirs;
//! * its own Erlang cookie in its own `HOME`, and its own `epmd` on its own
//!   port (`ERL_EPMD_PORT`), so no `rabbitmqctl` aimed at it can reach the
//!   shared node and nothing is registered with the shared epmd;
//! * `RABBITMQ_ENABLED_PLUGINS_FILE` in the temp dir: no management plugin
//!   (no HTTP port to collide on), and `rabbitmq-plugins` cannot change the
//!   machine's list;
//! * the scripts are run from `/usr/lib/rabbitmq/bin`, not through
//!   `/usr/sbin`'s wrapper, which would `su` to the `rabbitmq` user and
//!   bring that user's `HOME` (and cookie) along.
//!
//! Each node runs in its own process group, so [`RabbitNode::kill_9`] can
//! SIGKILL the script, the Erlang VM and its helpers in one go, as a power
//! cut would.
//!
//! Everything here blocks (the node takes seconds to boot or stop). From
//! async code that holds live connections to the node, call it through
//! `tokio::task::spawn_blocking` or from a multi-thread runtime, or the
//! connections' heartbeats stall meanwhile.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::TlsFiles;

/// How long a node may take to boot (a loaded 2-core machine booting three
/// nodes at once is slow) before the test gives up.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a graceful stop may take before the node is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the real (not `su`-wrapped) RabbitMQ scripts are:
/// `$RELFLOW_RABBITMQ_SBIN`, else Debian's `/usr/lib/rabbitmq/bin`, else
/// whatever `PATH` has.
fn sbin(tool: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("RELFLOW_RABBITMQ_SBIN") {
        return PathBuf::from(dir).join(tool);
    }
    let debian = Path::new("/usr/lib/rabbitmq/bin").join(tool);
    if debian.is_file() {
        return debian;
    }
    PathBuf::from(tool)
}

/// A port nobody listens on right now. (Another process could take it
/// before the node binds it; then the node fails to boot and says so.)
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// A cookie for one node or one cluster: distribution refuses peers (and
/// `rabbitmqctl`s) that do not present it.
fn new_cookie() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded randomly per process: enough for a test cookie.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(crate::unique_suffix().as_bytes());
    let (a, b) = (h.finish(), h.finish().rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15);
    format!("RELFLOWTEST{a:016X}{b:016X}")
}

/// Says whether an AMQP 0-9-1 server answers on `port`: it must reply to
/// the protocol header with a method frame (`connection.start`). Cheaper
/// than a `rabbitmqctl` call, and it checks what tests need: the listener
/// takes connections.
fn amqp_answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut frame_type = [0u8; 1];
    s.write_all(b"AMQP\x00\x00\x09\x01").is_ok() && s.read_exact(&mut frame_type).is_ok() && frame_type[0] == 1
}

/// A private epmd (Erlang's node-name registry) on its own port, for one
/// node or one cluster. Killed on drop, so it never outlives the test.
#[derive(Debug)]
struct Epmd {
    port: u16,
    child: Child,
}

impl Epmd {
    fn start() -> Arc<Epmd> {
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("epmd")
                .args(["-port", &port.to_string(), "-address", "127.0.0.1"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("run epmd (Erlang is installed with RabbitMQ)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Arc::new(Epmd { port, child });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // lost the port to someone else: try another
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("cannot start a private epmd");
    }
}

impl Drop for Epmd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start nodes: plain AMQP always, TLS on request.
#[derive(Debug, Default, Clone)]
pub struct RabbitBuilder {
    tls: bool,
}

impl RabbitBuilder {
    /// Also listen with TLS (a fresh CA, server and client certificates,
    /// see [`TlsFiles`]), with the `rabbitmq_auth_mechanism_ssl` plugin so
    /// a client certificate with CN `guest` logs in as `guest` with SASL
    /// EXTERNAL. PLAIN over TLS works too (a client certificate is asked
    /// for, not required).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Starts one node and waits until it takes AMQP connections.
    pub fn start(self) -> RabbitNode {
        let tls = self.tls.then(|| Arc::new(TlsFiles::generate("guest")));
        let mut node = RabbitNode::create(Epmd::start(), new_cookie(), tls);
        node.spawn();
        node.wait_ready();
        node
    }

    /// Starts `size` nodes that share a cookie (and, with [`tls`](Self::tls),
    /// one CA and certificate set), joins every other node to the first,
    /// and waits until all take connections.
    pub fn cluster(self, size: usize) -> RabbitCluster {
        assert!(size >= 1, "a cluster has at least one node");
        let tls = self.tls.then(|| Arc::new(TlsFiles::generate("guest")));
        let (epmd, cookie) = (Epmd::start(), new_cookie());
        let mut nodes: Vec<RabbitNode> =
            (0..size).map(|_| RabbitNode::create(Arc::clone(&epmd), cookie.clone(), tls.clone())).collect();
        // Boot them all at once: most of a boot is waiting, not CPU.
        for node in &mut nodes {
            node.spawn();
        }
        for node in &mut nodes {
            node.wait_ready();
        }
        let first = nodes[0].name.clone();
        for node in &mut nodes[1..] {
            node.ctl(&["stop_app"]);
            node.ctl(&["join_cluster", &first]);
            node.ctl(&["start_app"]);
            node.wait_ready();
        }
        RabbitCluster { nodes }
    }
}

/// A RabbitMQ node the test owns; see the module docs for how it is kept
/// apart from the machine's broker. Dropped = killed, and its data, logs
/// and certificates deleted.
#[derive(Debug)]
pub struct RabbitNode {
    name: String,
    amqp_port: u16,
    amqps_port: Option<u16>,
    dist_port: u16,
    tls: Option<Arc<TlsFiles>>,
    child: Option<Child>,
    epmd: Arc<Epmd>,
    dir: tempfile::TempDir,
}

impl RabbitNode {
    /// Starts a node with plain AMQP only and waits until it takes
    /// connections. See [`RabbitNode::builder`] for TLS and clusters.
    pub fn start() -> RabbitNode {
        RabbitBuilder::default().start()
    }

    /// Options: TLS, or a cluster of several nodes.
    pub fn builder() -> RabbitBuilder {
        RabbitBuilder::default()
    }

    /// Writes the node's files; does not start it.
    fn create(epmd: Arc<Epmd>, cookie: String, tls: Option<Arc<TlsFiles>>) -> RabbitNode {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("relflow-test-{}-{}@localhost", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let dir = tempfile::Builder::new().prefix("relflow-rabbit-").tempdir().expect("temp dir for the node");
        let node = RabbitNode {
            name,
            amqp_port: free_port(),
            amqps_port: tls.as_ref().map(|_| free_port()),
            dist_port: free_port(),
            tls,
            child: None,
            epmd,
            dir,
        };
        let d = node.dir.path();
        for sub in ["home", "data", "log"] {
            std::fs::create_dir(d.join(sub)).expect("create the node's dirs");
        }
        let cookie_file = d.join("home/.erlang.cookie");
        std::fs::write(&cookie_file, cookie).expect("write the cookie");
        // Erlang refuses a cookie file that others can read.
        std::fs::set_permissions(&cookie_file, std::fs::Permissions::from_mode(0o400)).expect("chmod the cookie");
        // Empty on purpose: read instead of /etc/rabbitmq/rabbitmq-env.conf.
        std::fs::write(d.join("rabbitmq-env.conf"), "").expect("write rabbitmq-env.conf");
        std::fs::write(d.join("rabbitmq.conf"), node.config()).expect("write rabbitmq.conf");
        let plugins = if node.tls.is_some() { "[rabbitmq_auth_mechanism_ssl]." } else { "[]." };
        std::fs::write(d.join("enabled_plugins"), plugins).expect("write enabled_plugins");
        node
    }

    fn config(&self) -> String {
        let mut conf = format!("listeners.tcp.default = 127.0.0.1:{}\n", self.amqp_port);
        if let (Some(tls), Some(port)) = (&self.tls, self.amqps_port) {
            conf += &format!(
                "listeners.ssl.default = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_peer\n\
                 ssl_options.fail_if_no_peer_cert = false\n\
                 ssl_cert_login_from = common_name\n\
                 auth_mechanisms.1 = EXTERNAL\n\
                 auth_mechanisms.2 = PLAIN\n\
                 auth_mechanisms.3 = AMQPLAIN\n",
                tls.ca_cert.display(),
                tls.server_cert.display(),
                tls.server_key.display(),
            );
        }
        conf
    }

    /// What both the server and `rabbitmqctl` need to find this node and
    /// nothing else; everything else of the caller's environment is dropped
    /// (a stray `RABBITMQ_*` or `ERL_*` there would change what starts).
    fn env(&self) -> Vec<(&'static str, OsString)> {
        let d = self.dir.path();
        let mut env = vec![
            ("HOME", d.join("home").into_os_string()),
            ("LANG", "C.UTF-8".into()),
            ("ERL_EPMD_PORT", self.epmd.port.to_string().into()),
            ("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf").into_os_string()),
        ];
        if let Some(path) = std::env::var_os("PATH") {
            env.push(("PATH", path));
        }
        env
    }

    fn spawn(&mut self) {
        let d = self.dir.path().to_path_buf();
        let out = File::options().create(true).append(true).open(d.join("server.out")).expect("open server.out");
        let err = out.try_clone().expect("dup server.out");
        let child = Command::new(sbin("rabbitmq-server"))
            .env_clear()
            .envs(self.env())
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", d.join("data"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            // Distribution on loopback only, like the listeners.
            .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .current_dir(&d)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {}: {e} (is rabbitmq-server installed?)", sbin("rabbitmq-server").display())
            });
        self.child = Some(child);
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("RabbitMQ node {} exited while booting ({status}):\n{}", self.name, self.log_tail());
            }
            if amqp_answers(self.amqp_port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "RabbitMQ node {} did not take connections within {BOOT_TIMEOUT:?}:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Erlang node name, e.g. `relflow-test-4242-0@localhost`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plain AMQP port (on 127.0.0.1); stays the same across restarts.
    pub fn amqp_port(&self) -> u16 {
        self.amqp_port
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f` (the default vhost).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }

    /// The TLS port, if the node was started with [`RabbitBuilder::tls`].
    pub fn amqps_port(&self) -> Option<u16> {
        self.amqps_port
    }

    /// `amqps://localhost:<port>/%2f?auth_mechanism=external`: TLS, logging
    /// in with the client certificate of [`tls`](Self::tls). `localhost`
    /// because that is the name the server certificate is checked against.
    pub fn amqps_url(&self) -> Option<String> {
        self.amqps_port.map(|port| format!("amqps://localhost:{port}/%2f?auth_mechanism=external"))
    }

    /// The certificates, if the node listens with TLS.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_deref()
    }

    /// Runs `rabbitmqctl -n <this node> <args>`; panics with its output
    /// unless it succeeds. Returns stdout.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = self.try_ctl(args);
        assert!(
            out.status.success(),
            "rabbitmqctl -n {} {args:?} failed ({}):\n{}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Like [`ctl`](Self::ctl), but returns whatever happened.
    pub fn try_ctl(&self, args: &[&str]) -> Output {
        Command::new(sbin("rabbitmqctl"))
            .env_clear()
            .envs(self.env())
            .args(["-q", "-n", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rabbitmqctl")
    }

    /// Whether the node's processes are still there (it may still be
    /// booting or stopping).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the node the way an operator does (SIGTERM: connections are
    /// closed, queues written out) and waits until it is gone. Its data
    /// stays for [`restart`](Self::restart). No-op if it is not running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // The script traps TERM, stops the VM and waits for it.
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (nothing, normally) goes now.
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
    }

    /// SIGKILLs the whole node at once (script, Erlang VM, helpers): no
    /// goodbye to clients, nothing flushed that was not already on disk. Its
    /// data stays for [`restart`](Self::restart).
    pub fn kill_9(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
    }

    /// Stops the node if it runs, starts it again on the same ports with the
    /// same data, and waits until it takes connections.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        self.wait_ready();
    }

    /// The end of the node's log and of its console output, for failure
    /// messages.
    pub fn log_tail(&self) -> String {
        let tail = |path: PathBuf| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            format!("--- {}\n{}\n", path.display(), lines[lines.len().saturating_sub(40)..].join("\n"))
        };
        let d = self.dir.path();
        tail(d.join("log").join(format!("{}.log", self.name))) + &tail(d.join("server.out"))
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        // Killed, not stopped: its data is deleted next, so there is
        // nothing to save, and a test's cleanup should not take seconds.
        self.kill_9();
    }
}

/// Several [`RabbitNode`]s joined into one cluster (see
/// [`RabbitBuilder::cluster`]). Node 0 is the one the others joined.
#[derive(Debug)]
pub struct RabbitCluster {
    nodes: Vec<RabbitNode>,
}

impl RabbitCluster {
    /// The nodes, in the order they were made.
    pub fn nodes(&self) -> &[RabbitNode] {
        &self.nodes
    }

    /// Node `i`, to stop, kill or restart it.
    pub fn node_mut(&mut self, i: usize) -> &mut RabbitNode {
        &mut self.nodes[i]
    }

    /// Every node at once, e.g. to restart several in parallel threads.
    pub fn nodes_mut(&mut self) -> &mut [RabbitNode] {
        &mut self.nodes
    }

    /// Asks node `via` which node leads quorum queue `queue` of vhost `/`
    /// and which nodes hold a replica: `(leader, members)` as indices into
    /// [`nodes`](Self::nodes). `None` if the queue is unknown or has no
    /// leader right now (an election is under way, or quorum is lost).
    pub fn quorum_of(&self, via: usize, queue: &str) -> Option<(usize, Vec<usize>)> {
        let out = self.nodes[via].try_ctl(&["list_queues", "--no-table-headers", "name", "leader", "members"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.split('\t').next() == Some(queue))?;
        let fields: Vec<&str> = line.split('\t').collect();
        let index_of = |name: &str| self.nodes.iter().position(|n| n.name() == name.trim());
        let leader = index_of(fields.get(1)?)?;
        let members = (0..self.nodes.len())
            .filter(|&i| fields.get(2).is_some_and(|m| m.contains(self.nodes[i].name())))
            .collect();
        Some((leader, members))
    }

    /// Every node's [`url`](RabbitNode::url), as a client's failover list.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RabbitNode::url).collect()
    }
}
