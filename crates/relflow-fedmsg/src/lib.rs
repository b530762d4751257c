//! fedmsg X.509 message signatures for relflow, compatible with fedmsg.
//!
//! fedmsg (Fedora's ZeroMQ bus) signs each envelope with the sending host's
//! certificate: RSA PKCS#1 v1.5 + SHA-1 over Python's
//! `json.dumps(msg, sort_keys=True, separators=(',', ':'))` of the envelope
//! minus `signature` and `certificate`. This crate reproduces those bytes
//! exactly ([`canonical`]), checks the certificate against the configured CA
//! and CRL, applies `routing_policy` ([`policy`]) and can sign for
//! republishing ([`sign`]). Pure Rust (RustCrypto, and `num-bigint` for the
//! per-message signature check, `pkcs1.rs`): OpenSSL under system crypto
//! policies refuses SHA-1 signatures.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use relflow_fedmsg::{FedmsgConfig, Verifier};
//! let cfg: FedmsgConfig = toml::from_str("ca_cert = '/etc/pki/fedmsg/ca.crt'")?;
//! let verifier = Verifier::from_config(&cfg)?;
//! match verifier.verify(&std::fs::read("msg.json")?) {
//!     Ok(signer) => println!("valid, signed by {}", signer.common_name),
//!     Err(e) => println!("invalid: {e}"),
//! }
//! # Ok(()) }
//! ```

pub mod canonical;
mod chains;
pub mod config;
mod pkcs1;
pub mod policy;
pub mod sign;
pub mod verify;
mod x509;

pub use canonical::{canonicalize, to_canonical, PyJson, PyStr};
pub use config::{FedmsgConfig, SignConfig};
pub use policy::{PolicyError, RoutingDecision, RoutingPolicy};
pub use sign::{SignError, Signer};
pub use verify::{fix_datagrepper_message, signed_bytes, LoadError, SignerInfo, Verifier, VerifyError};
pub use x509::fmt_time;
