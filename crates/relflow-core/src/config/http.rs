//! `[http]`: what `relflow serve` listens on, which parts it runs, and the
//! token that guards its mutating endpoints.
//!
//! ```toml
//! [http]
//! listen = "127.0.0.1:8088"
//! token_file = "/etc/relflow/http-token"   # or token = "...", or env RELFLOW_HTTP_TOKEN: the admin token
//! protect_reads = false                     # true: the page and read-only API need the token too
//! worker = true                             # serve also runs playbooks
//! ingest = true                             # serve accepts POST /api/publish
//!
//! [[http.token]]                            # named tokens with roles (tokens.rs)
//! name = "alice"
//! role = "operator"
//! token_file = "/etc/relflow/alice.token"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::tokens::{NamedToken, TokenSetting};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of the API, web page and `/metrics`. Loopback by default:
    /// put a TLS reverse proxy in front to expose it.
    pub listen: SocketAddr,
    /// The shared admin token (a string: prefer `token_file` or the
    /// RELFLOW_HTTP_TOKEN environment variable so the secret stays out of the
    /// config file), or `[[http.token]]` tables: named tokens with roles.
    pub token: Option<TokenSetting>,
    /// File holding the token (surrounding whitespace is ignored); relative
    /// to the config file.
    pub token_file: Option<PathBuf>,
    /// Require the token for read-only views too (runs, logs, page, metrics
    /// stay open on `false`, the default; `/healthz` and `/readyz` are always open).
    pub protect_reads: bool,
    /// `relflow serve` runs a worker in the same process.
    pub worker: bool,
    /// `relflow serve` accepts messages on `POST /api/publish`.
    pub ingest: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            token: None,
            token_file: None,
            protect_reads: false,
            worker: true,
            ingest: true,
        }
    }
}

impl HttpConfig {
    /// The `[[http.token]]` tables (none when `token` is a shared secret).
    pub fn named_tokens(&self) -> &[NamedToken] {
        match &self.token {
            Some(TokenSetting::Named(tokens)) => tokens,
            _ => &[],
        }
    }

    /// The shared admin secret written in the file, if any.
    pub fn shared_token(&self) -> Option<&str> {
        match &self.token {
            Some(TokenSetting::Shared(secret)) => Some(secret),
            _ => None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        super::tokens::validate(self.named_tokens())
    }
}
