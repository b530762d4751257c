//! `[retention]` and `relflow prune`: old runs, logs and dead letters go,
//! a dry run deletes nothing, and a run awaiting approval is kept.

mod common;

use std::time::Duration;

use common::{play, wait_for, Env};
use serde_json::{json, Value};

const RULES: &str = r#"
[[rule]]
name = "hello"
topic = "relflow.test.hello"
playbook = "hello.yml"

[[rule]]
name = "missing"
topic = "relflow.test.missing"
playbook = "does-not-exist.yml"

[[rule]]
name = "gated"
topic = "relflow.test.gated"
playbook = "hello.yml"
approval = { approvers = ["releng"], expires = "1h" }
"#;

#[test]
fn prune_deletes_what_retention_says_and_a_dry_run_nothing() {
    let env = Env::with_tables("", "[retention]\nruns = \"1s\"\ndead_letters = \"1s\"\n", RULES);
    env.playbook("hello.yml", &play("    - debug: msg=hello\n"));
    for topic in ["relflow.test.hello", "relflow.test.missing", "relflow.test.gated"] {
        env.publish_body(topic, &json!({"n": 1}));
    }
    env.drain();
    assert_eq!(env.runs().len(), 3, "a success, an error and a gate");

    // Once they are older than a second, a dry run counts them...
    let dry = wait_for(Duration::from_secs(60), "the runs to age", || {
        let dry = env.json(&["prune", "--dry-run"]);
        (dry["runs"] == 2 && dry["dead_letters"] == 1).then_some(dry)
    });
    assert_eq!((dry["dry_run"].clone(), dry["logs"].clone()), (Value::Bool(true), Value::Null), "{dry}");
    assert_eq!(env.runs().len(), 3, "a dry run deletes nothing");
    assert_eq!(env.json(&["dead-letters", "list"]).as_array().unwrap().len(), 1);
    let text = env.ok(&["prune", "--dry-run"]);
    assert!(text.contains("would delete 2") && text.contains("kept forever"), "{text}");

    // ...and a prune deletes them, all but the run awaiting approval.
    let done = env.json(&["prune"]);
    assert_eq!((done["runs"].as_u64(), done["dead_letters"].as_u64()), (Some(2), Some(1)), "{done}");
    let left = env.runs();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["status"], "awaiting_approval");
    assert!(env.json(&["dead-letters", "list"]).as_array().unwrap().is_empty());
    assert_eq!(env.json(&["prune"])["runs"], 0, "nothing left to prune");
}

#[test]
fn a_zero_retention_is_a_config_error() {
    let env = Env::with_tables("", "[retention]\nlogs = \"0s\"\n", RULES);
    let out = env.run(&["check"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("retention.logs"), "{}", common::describe(&out));
}
