//! ansible-rulebook 1.3.2 as a benchmark peer: its embedded JVM, the same
//! ansible-core, fed by a small local event source (`rulebook_source.py`;
//! the `ansible.eda` collection cannot be fetched here). `scripts/bench.sh`
//! makes its venv, `target/bench-venv-rulebook`.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Result;

use crate::{workspace, Setup, TRIVIAL_PLAYBOOK};

const SOURCE: &str = include_str!("rulebook_source.py");

/// A rulebook of one ruleset on localhost: `source_args` go to the local
/// source (YAML mapping lines, each `key: value`), `rules` is its rules list.
pub struct Rulebook {
    setup: Setup,
}

impl Rulebook {
    pub fn new(strategy: &str, source_args: &[(&str, String)], rules: &str) -> Result<Rulebook> {
        let setup = Setup::new("", "")?;
        let dir = setup.path();
        std::fs::create_dir_all(dir.join("sources"))?;
        std::fs::write(dir.join("sources/relflow_bench.py"), SOURCE)?;
        // The trivial play; ansible-rulebook hands the event over as ansible_eda.event.
        let play = TRIVIAL_PLAYBOOK.replace("  tasks:\n", "    msg: \"{{ ansible_eda.event }}\"\n  tasks:\n");
        std::fs::write(dir.join("trivial.yml"), play)?;
        std::fs::write(dir.join("inventory.yml"), "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")?;
        let args: String = source_args.iter().map(|(k, v)| format!("        {k}: {v:?}\n")).collect();
        let text = format!(
            "- name: bench\n  hosts: all\n  execution_strategy: {strategy}\n  sources:\n    - relflow_bench:\n{args}  \
             rules:\n{rules}"
        );
        std::fs::write(dir.join("rulebook.yml"), text)?;
        Ok(Rulebook { setup })
    }

    /// `ansible-rulebook` on this rulebook, output to /dev/null, its Python
    /// unbuffered (so a caller reading stdout sees each line when printed).
    pub fn command(&self) -> Command {
        let venv = workspace().join("target/bench-venv-rulebook/bin");
        let path = format!("{}:{}", venv.display(), std::env::var("PATH").unwrap_or_default());
        let mut cmd = Command::new(venv.join("ansible-rulebook"));
        cmd.args(["--rulebook", "rulebook.yml", "-i", "inventory.yml", "-S", "sources"])
            .current_dir(self.setup.path())
            .env("PATH", path)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    pub fn path(&self) -> &Path {
        self.setup.path()
    }
}

/// The hint for a rulebook that does not start.
pub const MISSING: &str = "start ansible-rulebook: run scripts/bench.sh (it makes target/bench-venv-rulebook)";
