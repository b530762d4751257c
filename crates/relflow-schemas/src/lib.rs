#![deny(missing_docs)]
//! The body schemas of fedora-messaging's message classes, for relflow.
//!
//! Fedora's publishers ship their message contracts as Python packages
//! (`bodhi-messages`, `koji-fedoramessaging-messages`, ...), each naming its
//! classes under the `fedora.messages` entry point group. A class has a
//! `topic` (mostly without the `org.fedoraproject.prod.` prefix the
//! publisher adds) and a `body_schema` (JSON Schema, draft 4 or 2019-09).
//!
//! * [`import`]: runs a small Python script with the venv's Python and
//!   writes one JSON file per class plus `index.json` (`relflow schemas
//!   import`).
//! * [`SchemaSet`]: the written directory, loaded; a topic resolves to
//!   the classes whose topic is its longest word suffix (or to the class
//!   the message's `fedora_messaging_schema` header names).
//! * [`SchemaSet::validate`]: a body against its topic's schema, and
//!   [`Gate`]: which sources do it (`[[source]] validate = "warn" |
//!   "reject"`).
//! * [`fields`]: a condition's key path walked through a schema
//!   (`relflow check`).
//! * [`summary`]: the class's own human summary of a message (dry-run).
//!
//! Everything is optional: with no schema directory relflow behaves as it
//! does without this crate.

pub mod fields;
mod gate;
mod import;
mod set;
mod summary;
mod validate;

pub use gate::{Gate, Verdict};
pub use import::{import, ImportError, ImportReport};
pub use set::{Candidates, Entry, LoadError, SchemaSet, INDEX};
pub use summary::{summary, SummaryError};
pub use validate::Invalid;
