//! flr — Fedora Lib RelEng.
//!
//! Re-usable release-engineering tasks, each a library function and a
//! narrow `flr` subcommand, so that playbooks on remote hosts can run each
//! one under a sudo rule that allows that command and nothing more.
//!
//! Modules: [`compose`] (productmd metadata), [`checksum`] (Fedora CHECKSUM
//! files), [`sync`] (publish a finished compose), [`koji`] (hub XML-RPC),
//! [`ostree`] (refs and summary), [`sudoers`] (rule generation).

pub mod checksum;
pub mod compose;
pub mod config;
pub mod error;
pub mod koji;
pub mod ostree;
pub mod sudoers;
pub mod sync;
pub mod validate;
pub mod xmlrpc;

pub use error::{Error, Result};
