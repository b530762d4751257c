//! `[[source]] validate`: which sources' messages are checked, and how.
//!
//! The intake checks and counts (both modes); the worker dead-letters
//! (`reject`), through the queue's own dead letters, so a message refused
//! for its schema is listed, explained and replayable like any other.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use relflow_core::config::{SourceConfig, Validate};
use relflow_core::Message;

use crate::{Invalid, LoadError, SchemaSet};

/// The schemas, and the mode of each source that validates.
#[derive(Clone)]
pub struct Gate {
    set: Arc<SchemaSet>,
    /// By [`Message::source`] (`amqp:fedora`); sources that are off are absent.
    modes: HashMap<String, Validate>,
}

/// A message that failed its schema, and what its source does about it.
#[derive(Debug)]
pub struct Verdict {
    /// `warn` or `reject`.
    pub mode: Validate,
    /// The schema's objections.
    pub invalid: Invalid,
}

impl Gate {
    /// The `validate` of each of `sources` that has one, by source label.
    pub fn modes(sources: &[SourceConfig]) -> HashMap<String, Validate> {
        sources.iter().filter(|s| s.validate() != Validate::Off).map(|s| (s.label(), s.validate())).collect()
    }

    /// The gate for `modes` (see [`Gate::modes`]), loading `dir`;
    /// `Ok(None)` when no source validates. A source that validates with no
    /// schemas imported is an error: it would pass everything, silently.
    pub fn open(dir: &Path, modes: HashMap<String, Validate>) -> Result<Option<Gate>, LoadError> {
        if modes.is_empty() {
            return Ok(None);
        }
        Ok(Some(Gate { set: Arc::new(SchemaSet::load(dir)?), modes }))
    }

    /// The verdict on `msg`: `None` when its source does not validate, no
    /// schema describes its topic, or it is valid.
    pub fn check(&self, msg: &Message) -> Option<Verdict> {
        let mode = *self.modes.get(&msg.source)?;
        let invalid = self.set.validate(&msg.topic, &msg.headers, &msg.body).err()?;
        Some(Verdict { mode, invalid })
    }
}
