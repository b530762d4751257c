//! A throwaway certificate authority with one server and one client
//! certificate, made with the `openssl` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA, a server certificate for `localhost`/127.0.0.1 and a client
/// certificate whose CN is [`client_name`](TlsFiles::client_name), all PEM
/// in a temp dir that goes away with this value. Keys are PKCS#8 P-256:
/// quick to make, and read by both Erlang's `ssl` and rustls.
#[derive(Debug)]
pub struct TlsFiles {
    _dir: tempfile::TempDir,
    /// The CA certificate: trust it to accept the server (or a client).
    pub ca_cert: PathBuf,
    /// The server's certificate (SAN `DNS:localhost`, `IP:127.0.0.1`).
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    /// The client's certificate, for SASL EXTERNAL.
    pub client_cert: PathBuf,
    /// The client's private key.
    pub client_key: PathBuf,
    /// The client certificate's CN: the user SASL EXTERNAL logs in as.
    pub client_name: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    crate::run(
        Command::new("openssl").current_dir(dir).args(args),
        &format!("openssl {args:?} (is openssl installed?)"),
    );
}

/// A new P-256 key in PKCS#8 PEM (what `genpkey` writes).
fn key(dir: &Path, name: &str) {
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name]);
}

impl TlsFiles {
    /// Makes a CA and signs a server certificate for localhost and a client
    /// certificate for `client_name`, valid for 30 days.
    pub fn generate(client_name: &str) -> TlsFiles {
        let dir = tempfile::Builder::new().prefix("relflow-tls-").tempdir().expect("temp dir for certificates");
        let d = dir.path();
        key(d, "ca.key");
        // rustls (webpki) only accepts a CA that says it is one, and leaf
        // certificates whose key usage fits: hence the explicit extensions.
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-days",
                "30",
                "-subj",
                "/CN=relflow test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-out",
                "ca.crt",
            ],
        );
        let leaf = |name: &str, cn: &str, ext: &str| {
            key(d, &format!("{name}.key"));
            std::fs::write(d.join(format!("{name}.ext")), ext).expect("write extensions file");
            openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-key",
                    &format!("{name}.key"),
                    "-subj",
                    &format!("/CN={cn}"),
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "30",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.crt"),
                ],
            );
        };
        leaf(
            "server",
            "localhost",
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        );
        leaf(
            "client",
            client_name,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        );
        TlsFiles {
            ca_cert: d.join("ca.crt"),
            server_cert: d.join("server.crt"),
            server_key: d.join("server.key"),
            client_cert: d.join("client.crt"),
            client_key: d.join("client.key"),
            client_name: client_name.to_owned(),
            _dir: dir,
        }
    }
}
