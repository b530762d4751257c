//! The outbox as `relflow status` tells it.

use std::fmt;

use relflow_store::Backlog;

/// The outbox's backlog in words, for `relflow status`.
pub struct Pending<'a>(pub &'a [Backlog]);

impl fmt::Display for Pending<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "announcements: none pending");
        }
        for b in self.0 {
            let oldest = b.oldest.map(|t| format!(", oldest from {}", t.to_rfc3339())).unwrap_or_default();
            let error = b.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default();
            writeln!(f, "announcements: {} pending for {}{oldest}{error}", b.pending, b.destination)?;
        }
        Ok(())
    }
}
