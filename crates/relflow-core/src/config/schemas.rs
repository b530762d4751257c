//! `[schemas]`: where the imported fedora-messaging schemas are.
//!
//! ```toml
//! [schemas]
//! dir = "schemas"                  # the default: beside the config file
//! python = ".venv/bin/python"      # runs `relflow schemas import` and summaries
//! ```
//!
//! `relflow schemas import` fills `dir` from the schema packages installed
//! in `python` (see docs/schemas.md). Until it has, nothing uses schemas:
//! `relflow check` skips the schema checks and dry-run shows no summary. A
//! `[[source]]` with `validate = "warn"` or `"reject"` needs them, and
//! refuses to start without.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[schemas]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemasConfig {
    /// The schema directory, relative to the config file. Default: `schemas`.
    pub dir: Option<PathBuf>,
    /// The Python with fedora-messaging and the schema packages, relative
    /// to the config file. Default: the `python` beside `[ansible]
    /// playbook_cmd` when that is a venv's, else `python3` on PATH.
    pub python: Option<PathBuf>,
}

impl SchemasConfig {
    /// Makes both paths absolute against `base` (the config's directory),
    /// filling in the defaults.
    pub(crate) fn resolve(&mut self, base: &Path, playbook_cmd: &Path) {
        self.dir = Some(base.join(self.dir.as_deref().unwrap_or(Path::new("schemas"))));
        self.python = Some(match &self.python {
            Some(p) if p.components().count() > 1 => base.join(p),
            Some(p) => p.clone(),
            None => beside(playbook_cmd).unwrap_or_else(|| PathBuf::from("python3")),
        });
    }

    /// The schema directory.
    pub fn dir(&self) -> &Path {
        self.dir.as_deref().unwrap_or(Path::new("schemas"))
    }

    /// The Python to run.
    pub fn python(&self) -> &Path {
        self.python.as_deref().unwrap_or(Path::new("python3"))
    }
}

/// The venv's `python` when `playbook_cmd` is `.../bin/ansible-playbook`
/// of a venv (the setup scripts put both there).
fn beside(playbook_cmd: &Path) -> Option<PathBuf> {
    let python = playbook_cmd.parent()?.join("python");
    (playbook_cmd.components().count() > 1 && python.is_file()).then_some(python)
}

/// `[[source]] validate`: what a message that fails its topic's schema
/// gets. A topic no installed schema describes always passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Validate {
    /// No check (the default).
    #[default]
    Off,
    /// Logged and counted, then queued as any other.
    Warn,
    /// Logged and counted, then dead-lettered by the worker with the
    /// schema's error, before any rule sees it.
    Reject,
}

#[cfg(test)]
mod tests {
    use crate::config::ingest::tests::load;

    #[test]
    fn schema_dir_defaults_beside_the_config() {
        let c = load("").unwrap();
        assert_eq!(c.schemas.dir(), c.path.parent().unwrap().join("schemas"));
        assert_eq!(c.schemas.python(), std::path::Path::new("python3"), "no venv beside ansible-playbook");
        let c = load("[schemas]\ndir = \"s\"\npython = \"venv/bin/python\"\n").unwrap();
        assert_eq!(c.schemas.dir(), c.path.parent().unwrap().join("s"));
        assert_eq!(c.schemas.python(), c.path.parent().unwrap().join("venv/bin/python"));
        assert!(load("[schemas]\nfolder = \"s\"\n").unwrap_err().contains("folder"));
    }

    #[test]
    fn sources_take_a_validate_mode() {
        let c = load(
            "[[source]]\ntype = \"webhook\"\nname = \"w\"\nsecret = \"s\"\nvalidate = \"reject\"\n\
             [[source]]\ntype = \"webhook\"\nname = \"v\"\nsecret = \"s\"\n",
        )
        .unwrap();
        assert_eq!(c.sources[0].validate(), super::Validate::Reject);
        assert_eq!(c.sources[1].validate(), super::Validate::Off);
        let bad =
            load("[[source]]\ntype = \"webhook\"\nname = \"w\"\nsecret = \"s\"\nvalidate = \"yes\"\n").unwrap_err();
        assert!(bad.contains("warn") && bad.contains("reject"), "{bad}");
    }
}
