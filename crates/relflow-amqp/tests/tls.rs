//! `amqps://` for real. The RabbitMQ on 127.0.0.1:5672 speaks plain AMQP, so
//! each test puts `socat` in front of it as a TLS terminator that demands a
//! client certificate signed by a CA that `openssl` makes for the test. That
//! checks the CA bundle, the client certificate and the login choice end to
//! end. The broker never sees the certificate, so it refuses an EXTERNAL
//! login: with a client certificate, only a URL that asks for PLAIN logs in.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::ConnectionProperties;
use relflow_amqp::{connect, AmqpQueue, AmqpQueueOptions, ClientCert, TlsOptions};
use relflow_queue::WorkQueue;

fn run(program: &str, args: &[&str], dir: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test.sh installs it)"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// In `dir`: a CA (`ca.pem`) and, signed by it, `server.pem` for 127.0.0.1
/// and `client.pem`, each with its `.key`.
fn make_pki(dir: &Path) {
    let openssl = |args: &[&str]| run("openssl", args, dir);
    let days = ["-days", "2"];
    let ca = ["-subj", "/CN=relflow test CA", "-keyout", "ca.key", "-out", "ca.pem"];
    openssl(&[&["req", "-x509", "-newkey", "rsa:2048", "-nodes"][..], &days, &ca].concat());
    for (name, ext) in [("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")] {
        let file = |suffix: &str| format!("{name}.{suffix}");
        std::fs::write(dir.join(file("ext")), format!("{ext}\n")).unwrap();
        let subject = format!("/CN={name}");
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &subject,
            "-keyout",
            &file("key"),
            "-out",
            &file("csr"),
        ]);
        let sign = ["x509", "-req", "-in", &file("csr"), "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"];
        openssl(&[&sign[..], &days, &["-extfile", &file("ext"), "-out", &file("pem")]].concat());
    }
}

fn rabbitmqctl(args: &[&str]) {
    run("rabbitmqctl", args, Path::new("/"));
}

/// socat terminating TLS on a free port, forwarding to the broker, and a
/// throwaway vhost to use through it.
struct Terminator {
    dir: tempfile::TempDir,
    port: u16,
    socat: Child,
    vhost: String,
}

impl Terminator {
    fn start() -> Terminator {
        let dir = tempfile::tempdir().unwrap();
        make_pki(dir.path());
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert=server.pem,key=server.key,cafile=ca.pem,verify=1"
        );
        let socat = Command::new("socat")
            .args([listen.as_str(), "TCP:127.0.0.1:5672"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (scripts/test.sh installs it)");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "socat does not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let vhost = format!("relflow-amqp-tls-{}-{port}", std::process::id());
        rabbitmqctl(&["add_vhost", &vhost]);
        rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
        Terminator { dir, port, socat, vhost }
    }

    fn url(&self, query: &str) -> String {
        format!("amqps://guest:guest@127.0.0.1:{}/{}{query}", self.port, self.vhost)
    }

    fn tls(&self, ca: bool, client: bool) -> TlsOptions {
        let path = |name: &str| self.dir.path().join(name);
        TlsOptions {
            ca_cert: ca.then(|| path("ca.pem")),
            client_cert: client.then(|| ClientCert { cert: path("client.pem"), key: path("client.key") }),
        }
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
        let _ = Command::new("rabbitmqctl").args(["delete_vhost", &self.vhost]).output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_work_queue_runs_over_tls_with_a_ca_bundle_and_a_client_certificate() {
    let t = Terminator::start();
    let opts = AmqpQueueOptions {
        url: t.url("?auth_mechanism=plain"),
        tls: Some(t.tls(true, true)),
        ..AmqpQueueOptions::default()
    };
    let q = AmqpQueue::connect(opts).await.unwrap();
    q.enqueue(b"over tls").await.unwrap();
    let d = q.claim(Duration::from_secs(20)).await.unwrap().expect("the message comes back");
    assert_eq!(d.payload, b"over tls");
    q.ack(&d).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_handshake_needs_the_ca_bundle_and_the_client_certificate() {
    let t = Terminator::start();
    let url = t.url("?auth_mechanism=plain");
    for (ca, client) in [(false, true), (true, false)] {
        let result = connect(&url, Some(&t.tls(ca, client)), ConnectionProperties::default()).await;
        let err = result.err().unwrap_or_else(|| panic!("connected with ca={ca} client={client}")).to_string();
        assert!(err.starts_with("cannot connect to amqps://guest:***@127.0.0.1:"), "{err}");
    }
}

/// The broker does not offer EXTERNAL (it never sees the certificate), so
/// it drops a connection that asks for it; the same connection with
/// `auth_mechanism=plain` in the URL logs in.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_logs_in_with_external_unless_the_url_says_otherwise() {
    let t = Terminator::start();
    let tls = t.tls(true, true);
    let props = ConnectionProperties::default;
    let refused = connect(&t.url(""), Some(&tls), props()).await;
    assert!(refused.is_err(), "the broker accepted a login it does not offer");
    let conn = connect(&t.url("?auth_mechanism=plain"), Some(&tls), props()).await.unwrap();
    // Only the login is under test here.
    let _ = conn.close(200, "done".into()).await;
    let plain_without_tls_options = connect(&t.url(""), Some(&t.tls(true, false)), props()).await;
    assert!(plain_without_tls_options.is_err(), "socat demands a client certificate");
}
