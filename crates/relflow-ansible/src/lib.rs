//! Runs one `ansible-playbook` safely, for relflow's workers.
//!
//! * The message becomes [`ExtraVars`]: six fixed top-level names, in a vars
//!   file where every string that could be a template is tagged `!unsafe`
//!   (never templated), mode 0600, deleted after the run
//!   (see [`ExtraVars::to_unsafe_yaml`]).
//! * The playbook sees an allow-listed environment only ([`ENV_ALLOWED`] plus
//!   configured names).
//! * Each run is wrapped in a supervisor process ([`supervise_main`]) that
//!   owns the whole process tree, so a timeout, a cancel or the death of the
//!   worker leaves no ansible or module process behind.
//! * Each run has a private dir (`rundir.rs`) for its vars, events, local
//!   temp files and its own SSH control sockets, so concurrent runs never
//!   share an SSH master; a killed worker's leftovers are swept at start.
//! * The log is captured (and optionally teed live to a file); per-task
//!   results come from relflow's own callback plugin, which also reports
//!   plays that matched no host and failures the playbook marked permanent.
//! * [`InventoryCheck`] asks the install's own `ansible-inventory` whether
//!   the configured inventories parse and each `limit` matches a host
//!   (`relflow check`).
//! * [`syntax_check`] runs `ansible-playbook --syntax-check` the way a run
//!   would load the playbook, for `relflow check --playbooks` and `relflow test`.
//! * Optionally ([`RunnerMode::Warm`]) runs are forked from a pre-started
//!   Python that has ansible imported, with the same guarantees (`warm.rs`).
//!
//! See README.md for the reasoning.

mod events;
mod inventory;
mod result;
mod rundir;
mod runner;
mod site;
mod supervise;
mod syntax;
mod vars;
mod warm;

pub use events::{Stats, TaskResult, TaskStatus};
pub use inventory::{Findings, InventoryCheck, InventoryTarget};
pub use result::{Outcome, RunResult};
pub use runner::{find_program, PlaybookRun, Runner, RunnerConfig, RunnerError, RunnerMode, ENV_ALLOWED};
pub use supervise::{supervise_main, SUPERVISE_ARG};
pub use syntax::{syntax_check, SyntaxError};
pub use vars::{ExtraVars, LoopabullCompat, RunInfo, COMPAT_NAMES};
