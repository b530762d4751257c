#![deny(missing_docs)]
//! Rules you can trust. The worst failure of an automation engine is a rule
//! that silently never fires; this crate finds such rules before a message
//! does.
//!
//! * [`check`]: every condition evaluated against sample messages of its
//!   topic (the real Fedora messages shipped in `samples/`, the files of
//!   `[check] samples`, the rule tests' messages). Type mismatches and
//!   non-boolean results are errors; keys no sample has are warnings with a
//!   did-you-mean; negations of keys some samples lack get the negation
//!   trap explained. With `playbooks`, every playbook is syntax-checked,
//!   and variables it defines that relflow's extra vars would override are
//!   warnings naming the file.
//!   With imported schemas (`[schemas] dir`), every condition is also
//!   checked against the schemas of the topics its pattern can match: a
//!   key no schema has, and a comparison with the wrong type, are errors.
//! * [`run_tests`]: the `[[rule.test]]` tables (`relflow test`).
//! * [`MessageReport`]: `relflow dry-run`, one line per rule saying why it
//!   matches or not, and the Jinja dict-method traps in the message.
//!
//! Reports are typed, with `Display` for the terminal and `Serialize` for
//! `--json`. What a rule matches is decided by `relflow_core`, the same
//! code the worker runs; this crate only explains and checks.

mod conditions;
mod explain;
mod playbooks;
pub mod samples;
mod schemas;
mod shadowing;
mod table;
pub mod traps;

pub use conditions::{check, check_rule, check_with, CheckReport, RuleCheck, SchemaDir};
pub use explain::{MessageReport, RuleLine, RunReport, SchemaReport};
pub use playbooks::{syntax_check_all, PlaybookCheck};
pub use samples::{Sample, Samples};
pub use table::{run_tests, TestCase, TestReport};
