//! `[compat]`: behaving like the tool a config came from, for playbooks
//! written for it. A loopabull YAML config has `loopabull` on.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Config;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompatConfig {
    /// Playbooks also get the fedmsg envelope fields loopabull's fedmsg
    /// looper passed (`timestamp`, `username`, `i`, ...) as top-level
    /// variables, `msg_id` is undefined when the message had none, and
    /// playbooks run from `/` as under loopabull's systemd unit.
    pub loopabull: bool,
}

impl Config {
    /// The working directory of a playbook run: the playbooks dir, or `/`
    /// under loopabull compatibility (loopabull never changed directory, and
    /// its unit ran from `/`).
    pub fn playbook_cwd(&self) -> PathBuf {
        if self.compat.loopabull {
            PathBuf::from("/")
        } else {
            self.playbooks_dir.clone()
        }
    }
}
