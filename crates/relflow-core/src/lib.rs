//! The heart of relflow: the [`Message`] model and its decoders, topic
//! patterns, `when` conditions, [`Rule`]s and the configuration that holds
//! them.
//!
//! Messages, patterns, conditions and rules are plain data and pure
//! functions, so the worker, the CLI's `dry-run` and the tests all see
//! exactly the same matching logic. The only I/O is in [`config`]: loading
//! the config file (and the secret files it names) and checking that
//! playbook paths exist and stay inside `playbooks_dir`.

mod ago;
pub mod condition;
pub mod config;
pub mod loopabull;
pub mod loopabull_import;
mod message;
pub mod redact;
mod rules;
pub mod schedule;
pub mod subject;
mod text;
mod topic;

pub use ago::ago;
pub use config::{Config, ConfigError};
pub use message::{
    json_type, queue_payload_limit, validate_topic, DecodeError, Message, DEFAULT_MAX_MESSAGE_BYTES, WRAPPING_ALLOWANCE,
};
pub use rules::{explain_rules, match_rules, Expect, GroupSpec, Matches, Rule, RuleTest, Verdict};
pub use subject::subject;
pub use text::{escape_controls, truncate, ControlEscaper};
pub use topic::{PatternError, TopicPattern};
