//! One way to open an AMQP connection, for the work queue and for the
//! bridge's fedora-messaging source alike.
//!
//! `amqps://` uses rustls. A CA bundle is trusted on top of the system roots
//! (rustls-native-certs); a client certificate is presented during the
//! handshake and, unless the URL names an `auth_mechanism`, relflow logs in
//! with SASL EXTERNAL: the broker maps the certificate's subject to a user,
//! as Fedora's public broker requires. No error or log line shows the URL's
//! password ([`redact_url`]).

use std::path::{Path, PathBuf};

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::{AMQPUri, SASLMechanism};
use lapin::{Connection, ConnectionProperties};
use relflow_core::config::AmqpTls;
use relflow_core::redact::redact_url;

/// TLS settings of an `amqps://` connection. Paths are used as given (the
/// config loader has already made them absolute).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM bundle of the CA(s) that signed the broker's certificate, trusted
    /// in addition to the system roots.
    pub ca_cert: Option<PathBuf>,
    /// A certificate to log in with (SASL EXTERNAL).
    pub client_cert: Option<ClientCert>,
}

/// A client certificate and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate, optionally followed by its intermediates.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl From<&AmqpTls> for TlsOptions {
    /// `cert` without `key` (or the reverse) is refused when the config is
    /// loaded, so here it just means no client certificate.
    fn from(tls: &AmqpTls) -> Self {
        let client_cert = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => Some(ClientCert { cert: cert.clone(), key: key.clone() }),
            _ => None,
        };
        TlsOptions { ca_cert: tls.ca_cert.clone(), client_cert }
    }
}

/// Why [`connect`] failed. Every URL in it is redacted.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{url} is not a valid AMQP URL: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot read tls.{what} {}: {error}", path.display())]
    Read { what: &'static str, path: PathBuf, error: std::io::Error },
    #[error("tls.ca_cert {} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    // The cause is in the text, not in `source()`, so that an `{:#}` chain
    // does not print it twice.
    #[error("cannot connect to {url}: {error}")]
    Connect { url: String, error: lapin::Error },
}

impl ConnectError {
    /// The broker refused the login or the vhost: the URL is wrong, and
    /// trying again cannot help.
    pub fn is_refused(&self) -> bool {
        use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
        let ConnectError::Connect { error, .. } = self else { return false };
        let lapin::ErrorKind::ProtocolError(e) = error.kind() else { return false };
        matches!(
            e.kind(),
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)
        )
    }
}

/// Connect to `url`, over TLS with `tls` for `amqps://`.
pub async fn connect(
    url: &str,
    tls: Option<&TlsOptions>,
    properties: ConnectionProperties,
) -> Result<Connection, ConnectError> {
    let mut uri: AMQPUri = url.parse().map_err(|reason: String| ConnectError::Url {
        url: redact_url(url),
        // The parser may quote the whole URL back.
        reason: reason.replace(url, &redact_url(url)),
    })?;
    let config = match tls {
        Some(tls) => tls_config(tls, &mut uri)?,
        None => OwnedTLSConfig::default(),
    };
    let failed = |error| ConnectError::Connect { url: redact_url(url), error };
    let runtime = lapin::runtime::default_runtime().map_err(failed)?;
    Connection::connect_uri_with_config(uri, properties, config, runtime).await.map_err(failed)
}

/// Reads the PEM files, and makes a client certificate log in with SASL
/// EXTERNAL unless the URL chose a mechanism itself.
fn tls_config(tls: &TlsOptions, uri: &mut AMQPUri) -> Result<OwnedTLSConfig, ConnectError> {
    let mut config = OwnedTLSConfig::default();
    if let Some(path) = &tls.ca_cert {
        let pem = String::from_utf8_lossy(&read("ca_cert", path)?).into_owned();
        // rustls skips what it cannot parse: without this, a wrong file would
        // only show up as an unknown issuer at handshake time.
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(ConnectError::NoCertificate { path: path.clone() });
        }
        config.cert_chain = Some(pem);
    }
    if let Some(client) = &tls.client_cert {
        let pem = read("cert", &client.cert)?;
        let key = read("key", &client.key)?;
        config.identity = Some(OwnedIdentity::PKCS8 { pem, key });
        uri.query.auth_mechanism.get_or_insert(SASLMechanism::External);
    }
    Ok(config)
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|error| ConnectError::Read { what, path: path.to_owned(), error })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_client_certificate_logs_in_with_external_unless_the_url_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let client = ClientCert { cert: write(dir.path(), "c.pem", "cert"), key: write(dir.path(), "k.pem", "key") };
        let tls = TlsOptions { ca_cert: None, client_cert: Some(client) };
        let mut uri: AMQPUri = "amqps://broker/%2f".parse().unwrap();
        let config = tls_config(&tls, &mut uri).unwrap();
        assert_eq!(uri.query.auth_mechanism, Some(SASLMechanism::External));
        assert_eq!(config.identity, Some(OwnedIdentity::PKCS8 { pem: b"cert".to_vec(), key: b"key".to_vec() }));
        let mut uri: AMQPUri = "amqps://u:p@broker/%2f?auth_mechanism=plain".parse().unwrap();
        tls_config(&tls, &mut uri).unwrap();
        assert_eq!(uri.query.auth_mechanism, Some(SASLMechanism::Plain));
    }

    #[test]
    fn a_ca_bundle_alone_keeps_the_url_login() {
        let dir = tempfile::tempdir().unwrap();
        let ca = write(dir.path(), "ca.pem", "-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n");
        let mut uri: AMQPUri = "amqps://u:p@broker/%2f".parse().unwrap();
        let config = tls_config(&TlsOptions { ca_cert: Some(ca), client_cert: None }, &mut uri).unwrap();
        assert!(config.cert_chain.is_some_and(|pem| pem.contains("MII=")));
        assert_eq!(uri.query.auth_mechanism, None);
    }

    #[test]
    fn unreadable_or_wrong_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut uri: AMQPUri = "amqps://broker".parse().unwrap();
        let missing = TlsOptions { ca_cert: Some(dir.path().join("nope.pem")), client_cert: None };
        let err = tls_config(&missing, &mut uri).unwrap_err().to_string();
        assert!(err.starts_with("cannot read tls.ca_cert ") && err.contains("nope.pem"), "{err}");
        let key_not_cert = TlsOptions { ca_cert: Some(write(dir.path(), "k.pem", "PRIVATE KEY")), client_cert: None };
        let err = tls_config(&key_not_cert, &mut uri).unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }

    #[tokio::test]
    async fn errors_never_show_the_password() {
        // Port 1: nothing listens, the connect fails at once.
        let urls = [
            "amqp://relflow:Pw1@Pw2:Pw3@127.0.0.1:1/%2f",
            "amqp://relflow:Pw1@Pw2:Pw3/Pw4@127.0.0.1:1/%2f",
            "amqp:relflow:Pw1@Pw2",
            "http://u:Pw1@h",
        ];
        for url in urls {
            let Err(err) = connect(url, None, ConnectionProperties::default()).await else { panic!("{url} connected") };
            let err = err.to_string();
            assert!(!err.contains("Pw"), "{err}");
        }
    }
}
