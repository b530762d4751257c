//! The messages conditions are checked against: the real Fedora messages
//! shipped with relflow, the files `[check] samples` names, and every
//! `[[rule.test]]` message.

use std::collections::BTreeSet;
use std::path::PathBuf;

use relflow_core::{Config, Message};

/// One sample message and where it came from.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The file (for shipped samples, `shipped:<file name>`).
    pub name: String,
    /// The decoded message.
    pub message: Message,
}

/// All samples for a config, and what went wrong finding them.
#[derive(Debug, Default)]
pub struct Samples {
    /// Every usable sample.
    pub all: Vec<Sample>,
    /// Files that cannot be read or decoded: errors, since a rule test or
    /// check that silently skipped them would prove nothing.
    pub errors: Vec<String>,
    /// Patterns that match no file.
    pub warnings: Vec<String>,
}

macro_rules! shipped {
    ($($name:literal),* $(,)?) => { &[$(($name, include_str!(concat!("../samples/", $name)))),*] };
}

/// The shipped samples (see samples/README.md for where each came from).
const SHIPPED: &[(&str, &str)] = shipped![
    "org.fedoraproject.dev.bodhi.update.requirements_met.stable.json",
    "org.fedoraproject.prod.bodhi.compose.complete.json",
    "org.fedoraproject.prod.bodhi.update.comment.json",
    "org.fedoraproject.prod.bodhi.update.complete.testing.json",
    "org.fedoraproject.prod.bodhi.update.request.testing.json",
    "org.fedoraproject.prod.buildsys.build.state.change--COMPLETE-unsigned.json",
    "org.fedoraproject.prod.buildsys.build.state.change--amqp-2025.json",
    "org.fedoraproject.prod.buildsys.build.state.change--signed.json",
    "org.fedoraproject.prod.buildsys.repo.done.json",
    "org.fedoraproject.prod.buildsys.rpm.sign--amqp-2024.json",
    "org.fedoraproject.prod.buildsys.rpm.sign--signed.json",
    "org.fedoraproject.prod.buildsys.tag--signed.json",
    "org.fedoraproject.prod.buildsys.untag--signed.json",
    "org.fedoraproject.prod.compose.rawhide.complete.json",
    "org.fedoraproject.prod.greenwave.decision.update.json",
    "org.fedoraproject.prod.pungi.compose.fail.to.start.json",
    "org.fedoraproject.prod.pungi.compose.ostree.json",
    "org.fedoraproject.prod.pungi.compose.phase.start.json",
    "org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json",
    "org.fedoraproject.prod.pungi.compose.status.change--FINISHED_INCOMPLETE-2018.json",
    "org.fedoraproject.prod.pungi.compose.status.change--STARTED.json",
    "org.fedoraproject.prod.pungi.compose.status.change--TERMINATED.json",
    "org.fedoraproject.stg.bodhi.buildroot_override.tag.json",
];

/// The file names and contents of the shipped samples.
pub fn shipped_files() -> &'static [(&'static str, &'static str)] {
    SHIPPED
}

/// The shipped samples, decoded.
pub fn shipped() -> Vec<Sample> {
    // They are tested to decode, so a failure here cannot happen in a release.
    let decode = |(name, text): &(&str, &str)| {
        let message = Message::decode(text.as_bytes(), "sample", usize::MAX).ok()?;
        Some(Sample { name: format!("shipped:{name}"), message })
    };
    SHIPPED.iter().filter_map(decode).collect()
}

/// The samples `config` asks for: `[check] samples`, the rule tests'
/// messages, and (unless turned off) the shipped ones.
pub fn load(config: &Config) -> Samples {
    let mut samples = Samples::default();
    let mut files = BTreeSet::new();
    for pattern in &config.check.samples {
        match glob::glob(pattern) {
            Err(e) => samples.errors.push(format!("[check] samples: {pattern:?} is not a valid pattern: {e}")),
            Ok(paths) => {
                let before = files.len();
                files.extend(paths.flatten());
                if files.len() == before {
                    samples.warnings.push(format!("[check] samples: {pattern} matches no file"));
                }
            }
        }
    }
    files.extend(config.rules.iter().flat_map(|r| r.tests.iter().map(|t| t.message.clone())));
    for path in files {
        match read(config, &path) {
            Ok(message) => samples.all.push(Sample { name: display(config, &path), message }),
            Err(e) => samples.errors.push(e),
        }
    }
    if config.check.shipped_samples {
        // A user's copy of a shipped message (same id: the id of an id-less
        // fedmsg is derived from its content) counts once, under its own name.
        let shipped: Vec<_> =
            shipped().into_iter().filter(|s| !samples.all.iter().any(|u| u.message.id == s.message.id)).collect();
        samples.all.extend(shipped);
    }
    samples
}

/// Reads and decodes one message file, as `relflow publish` would.
pub fn read(config: &Config, path: &std::path::Path) -> Result<Message, String> {
    let name = display(config, path);
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    Message::decode(&bytes, "sample", config.max_message_bytes).map_err(|e| format!("{name}: not a message: {e}"))
}

/// `path` relative to the config file's directory, where it is inside it.
pub fn display(config: &Config, path: &std::path::Path) -> String {
    let dir = config.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let dir = std::path::absolute(dir).unwrap_or_else(|_| PathBuf::from(dir));
    path.strip_prefix(&dir).unwrap_or(path).display().to_string()
}
