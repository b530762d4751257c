//! One error type for the whole crate, with a stable exit code per kind so
//! playbooks can tell "the compose is not ready" from "flr is misconfigured".

use std::path::Path;

/// Every flr failure. Messages say what went wrong *and* what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad argument, path or configuration value (exit 2).
    #[error("{0}")]
    Invalid(String),
    /// The operation ran but its check failed: compose not finished, checksum
    /// mismatch, ... (exit 3). Retrying later may succeed.
    #[error("{0}")]
    CheckFailed(String),
    /// An external tool or service (rsync, ostree, koji hub) failed (exit 4).
    #[error("{0}")]
    External(String),
    /// A local I/O problem (exit 1).
    #[error("{0}")]
    Io(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Io(_) => 1,
            Error::Invalid(_) => 2,
            Error::CheckFailed(_) => 3,
            Error::External(_) => 4,
        }
    }

    /// A short machine-readable kind, used in `--json` error output.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io(_) => "io",
            Error::Invalid(_) => "invalid",
            Error::CheckFailed(_) => "check_failed",
            Error::External(_) => "external",
        }
    }

    /// Wrap an I/O error with the path and the action that failed.
    pub fn io(action: &str, path: &Path, e: std::io::Error) -> Self {
        Error::Io(format!("cannot {action} {}: {e}", path.display()))
    }
}

/// Crate-wide result alias.
pub type Result<T> = std::result::Result<T, Error>;
