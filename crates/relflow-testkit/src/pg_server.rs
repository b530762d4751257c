//! A PostgreSQL server owned by the test, for the tests that restart or
//! kill the database: the machine's shared server is never touched.
//!
//! `initdb` into a temp dir, then `postgres` on its own port (127.0.0.1) and
//! its own unix socket dir, with trust auth for `postgres`. PostgreSQL
//! refuses to run as root, so as root every tool runs as the `postgres` OS
//! user (`runuser`), and the dir is chowned to it; as anyone else, as
//! themselves.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A PostgreSQL server of the test's own. Dropped = stopped at once
/// (`-m immediate`) and its data deleted.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

/// Where `initdb` and `pg_ctl` are: `$RELFLOW_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian does not put them on `PATH`).
fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("RELFLOW_PG_BIN") {
        return PathBuf::from(dir);
    }
    let versions = std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten();
    let mut versions: Vec<(u32, PathBuf)> = versions
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect("PostgreSQL server binaries (set RELFLOW_PG_BIN to their dir)")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl PgServer {
    /// Creates a cluster and starts it; panics (with the server log) if it
    /// does not come up.
    pub fn start() -> PgServer {
        let dir = tempfile::Builder::new().prefix("relflow-pg-").tempdir().expect("temp dir for PostgreSQL");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let server = PgServer { port, bin: pg_bin(), dir };
        std::fs::create_dir(server.socket_dir()).expect("create the socket dir");
        if is_root() {
            crate::run(
                Command::new("chown").args(["-R", "postgres:postgres"]).arg(server.dir.path()),
                "chown the PostgreSQL dir to the postgres user",
            );
        }
        let data = server.data_dir();
        let initdb = server.bin.join("initdb");
        crate::run(
            &mut server.tool(&initdb, &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
            "initdb",
        );
        server.pg_ctl(&["start"]);
        server
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// `program args`, as the `postgres` user when run as root.
    fn tool(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    /// `pg_ctl <action>` with this server's data dir, port and socket dir;
    /// `-w`: returns once the action is done (the server takes connections,
    /// or is gone).
    fn pg_ctl(&self, action: &[&str]) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.socket_dir().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let (data, pg_ctl) = (self.data_dir(), self.bin.join("pg_ctl"));
        let mut args = vec!["-D", &data, "-l", &log, "-o", &options, "-w", "-t", "120"];
        args.extend_from_slice(action);
        let out = self.tool(&pg_ctl, &args).output().expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {action:?} failed ({}):\n{}{}\n--- server.log\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The TCP port (on 127.0.0.1); the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq connection string for database `postgres`, as relflow's
    /// `[store] url` takes it.
    pub fn url(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres", self.port)
    }

    /// Runs `sql` with psql (as the superuser); returns its unaligned output.
    pub fn sql(&self, sql: &str) -> String {
        let port = self.port.to_string();
        crate::run(
            Command::new("psql").args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", "postgres"]).args([
                "-v",
                "ON_ERROR_STOP=1",
                "-qAtc",
                sql,
            ]),
            "psql on the test's PostgreSQL",
        )
    }

    /// `pg_ctl restart -m fast`: every session is cut (their advisory locks
    /// go with them), the server stops cleanly and starts again on the same
    /// port with the same data.
    pub fn restart(&self) {
        self.pg_ctl(&["-m", "fast", "restart"]);
    }

    /// `pg_ctl stop -m fast`; [`start_again`](Self::start_again) brings it back.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    /// Starts it after [`stop`](Self::stop), with the same data.
    pub fn start_again(&self) {
        self.pg_ctl(&["start"]);
    }

    /// When the server last started, as PostgreSQL says: it changes on
    /// every restart, so a test can tell one happened.
    pub fn started_at(&self) -> String {
        self.sql("SELECT pg_postmaster_start_time()")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let (data, pg_ctl) = (self.data_dir(), self.bin.join("pg_ctl"));
        let mut stop = self.tool(&pg_ctl, &["-D", &data, "-m", "immediate", "-w", "-t", "30", "stop"]);
        let _ = stop.output();
    }
}
