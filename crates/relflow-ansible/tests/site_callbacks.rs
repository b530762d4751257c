//! The site's ansible.cfg is respected: the callbacks it enables (here
//! `ansible.builtin.junit` and a plugin of the site's own) still run next to
//! relflow's, cold and warm, and relflow still records every task. A
//! separate test binary (= process) because it sets an environment variable.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use relflow_ansible::{Outcome, Runner, RunnerMode, TaskStatus};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A site callback that writes a file when the playbook ends.
fn site_plugin(marker: &Path) -> String {
    format!(
        "from ansible.plugins.callback import CallbackBase\n\n\
         class CallbackModule(CallbackBase):\n    \
         CALLBACK_VERSION = 2.0\n    CALLBACK_TYPE = 'notification'\n    \
         CALLBACK_NAME = 'site_marker'\n    CALLBACK_NEEDS_ENABLED = True\n\n    \
         def v2_playbook_on_stats(self, stats):\n        \
         with open({marker:?}, 'w') as f:\n            f.write('ran')\n"
    )
}

#[tokio::test]
async fn callbacks_the_site_cfg_enables_run_next_to_relflows() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("site_plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let cfg = dir.path().join("ansible.cfg");
    // A relative plugin dir: ansible resolves it against the cfg's dir.
    std::fs::write(
        &cfg,
        "[defaults]\ncallbacks_enabled = ansible.builtin.junit, site_marker\ncallback_plugins = site_plugins\n\
         force_color = true\n",
    )
    .unwrap();
    let junit = dir.path().join("junit");
    // SAFETY of set_var: this is the only test in this binary, and it runs
    // before any other thread of ours reads the environment.
    std::env::set_var("JUNIT_OUTPUT_DIR", &junit);

    for mode in [RunnerMode::Cold, RunnerMode::Warm] {
        let marker = dir.path().join(format!("{mode:?}.marker"));
        std::fs::write(plugins.join("site_marker.py"), site_plugin(&marker)).unwrap();
        let mut config = config(&dir.path().join(format!("{mode:?}")));
        config.ansible_config = Some(cfg.clone());
        config.env_passthrough = vec!["JUNIT_OUTPUT_DIR".into()];
        config.mode = mode;
        let runner = Runner::new(config).unwrap();
        let run = playbook_run("results.yml", vars(json!({})), Duration::from_secs(120));
        let r = runner.run(&run, CancellationToken::new()).await;

        assert_eq!(r.outcome, Outcome::Succeeded, "{mode:?}: {:?}\n{}", r.error, r.log);
        if mode == RunnerMode::Warm {
            assert_eq!(runner.warm_generation(), Some(1), "the run did not use the warm pool\n{}", r.log);
        }
        let statuses: Vec<TaskStatus> = r.tasks.iter().map(|t| t.status).collect();
        assert_eq!(statuses, [TaskStatus::Ok, TaskStatus::Changed, TaskStatus::Skipped], "{mode:?}\n{}", r.log);
        assert_eq!(std::fs::read_to_string(&marker).ok().as_deref(), Some("ran"), "{mode:?}: site callback\n{}", r.log);
        let reports = std::fs::read_dir(&junit).map(|d| d.count()).unwrap_or(0);
        assert!(reports > 0, "{mode:?}: junit wrote nothing to {}\n{}", junit.display(), r.log);
        std::fs::remove_dir_all(&junit).unwrap();
        // force_color in the cfg must not colour the log relflow stores.
        assert!(!r.log.contains('\u{1b}'), "{mode:?}: coloured log\n{}", r.log);
    }
}
