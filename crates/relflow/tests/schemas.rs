//! Issue 18's schema acceptance, through the real binary: `relflow schemas
//! import` from the venv's packages, then `relflow check` refuses a
//! misspelt bodhi key, and under `validate = "reject"` a schema-invalid
//! bodhi message is dead-lettered with the schema's error, while under
//! `warn` it runs and is counted in `/metrics`; dry-run shows the class's
//! summary line.

mod common;

use std::time::Duration;

use common::serve::{value, Serve, LIMIT};
use common::{describe, fixture, play, wait_for, Env};
use serde_json::{json, Value};

const COMMENT: &str = "org.fedoraproject.prod.bodhi.update.comment";

fn rule(when: &str) -> String {
    format!("[[rule]]\nname = \"comment\"\ntopic = {COMMENT:?}\nwhen = '{when}'\nplaybook = \"ok.yml\"\n")
}

#[test]
fn check_refuses_a_misspelt_bodhi_key_with_a_did_you_mean_once_schemas_are_imported() {
    let env = Env::new(&rule(r#"msg.comment.update.stauts == "testing""#));
    env.playbook("ok.yml", &play("    - debug: msg=ok\n"));
    let before = env.run(&["check"]);
    assert!(before.status.success(), "no schemas: only the samples' warning\n{}", describe(&before));

    let imported = env.ok(&["schemas", "import"]);
    assert!(imported.contains("bodhi-messages") && imported.contains("koji-fedoramessaging-messages"), "{imported}");
    let after = env.run(&["check"]);
    let stderr = String::from_utf8_lossy(&after.stderr);
    assert!(!after.status.success(), "{}", describe(&after));
    assert!(
        stderr.contains("`msg.comment.update.stauts`: no schema of bodhi.update.comment (bodhi-messages ")
            && stderr.contains("did you mean `status`?"),
        "{stderr}"
    );

    // dry-run names the class and gives bodhi's own summary line.
    let file = fixture(&format!("{COMMENT}.json"));
    let shown = env.ok(&["dry-run", "--rules-only", file.to_str().unwrap()]);
    assert!(shown.contains("  schema: bodhi.update.comment.v1 (valid)\n"), "{shown}");
    assert!(
        shown.contains("  summary: kalev commented on update xdg-desktop-portal-1.4.2-1.fc30 (karma: 0)\n"),
        "{shown}"
    );
    let old_koji = fixture("org.fedoraproject.prod.buildsys.build.state.change--signed.json");
    let report = env.json(&["dry-run", "--rules-only", old_koji.to_str().unwrap()]);
    assert!(report[0]["schema"]["invalid"].as_str().unwrap().contains("\"epoch\" is a required property"), "{report}");
}

/// fedora-messaging form of the bodhi comment fixture; `schema` is the
/// class its publisher says it is.
fn bodhi_comment(id: &str, schema: &str, karma: Value) -> String {
    let envelope: Value = serde_json::from_slice(&std::fs::read(fixture(&format!("{COMMENT}.json"))).unwrap()).unwrap();
    let mut body = envelope["msg"].clone();
    body["comment"]["karma"] = karma;
    let headers = json!({"fedora_messaging_schema": schema, "fedora_messaging_severity": 20, "sent-at": "2019-05-28T16:54:23+00:00"});
    json!({"topic": COMMENT, "headers": headers, "id": id, "body": body, "queue": null, "priority": 0}).to_string()
}

/// An AMQP source `fm` on `vhost` with `validate = mode`, and the comment
/// rule with condition `when`, running ok.yml.
fn validating_source(vhost: &relflow_testkit::Vhost, mode: &str, when: &str) -> Env {
    let env = Env::new(&format!(
        "[[source]]\ntype = \"amqp\"\nname = \"fm\"\nurl = {url:?}\nbindings = [\"org.fedoraproject.#\"]\n\
         validate = {mode:?}\n\n{}",
        rule(when),
        url = vhost.url()
    ));
    env.playbook("ok.yml", &play("    - debug: msg=ok\n"));
    env
}

#[test]
fn a_schema_invalid_bodhi_message_is_dead_lettered_with_the_schema_error_under_validate_reject() {
    let vhost = relflow_testkit::Vhost::new("schema-reject");
    let env = validating_source(&vhost, "reject", "msg.comment.karma >= 0");
    let no_schemas = env.run(&["bridge"]);
    let stderr = String::from_utf8_lossy(&no_schemas.stderr);
    assert!(!no_schemas.status.success() && stderr.contains("run `relflow schemas import` first"), "{stderr}");
    env.ok(&["schemas", "import"]);

    let upstream = "relflow-bridge.fm";
    let depth = || vhost.queues().into_iter().find(|q| q.name == upstream).map(|q| q.ready + q.unacked);
    let bridge = |until: &dyn Fn() -> bool, what: &str| {
        let mut child = env.command(&["bridge"]).stdin(std::process::Stdio::null()).spawn().unwrap();
        relflow_testkit::wait_until(Duration::from_secs(60), what, until);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        assert!(child.wait().unwrap().success(), "SIGTERM is a clean stop");
    };
    bridge(&|| depth().is_some(), "the bridge to declare its queue");
    // fedora-messaging's own publish validates against the class the
    // header names, so the bad copy says it is a plain `base.message`: a
    // publisher without bodhi's schema. Its topic is still bodhi's.
    let lines = [
        bodhi_comment("schema-valid", "bodhi.update.comment.v1", json!(1)),
        bodhi_comment("schema-invalid", "base.message", json!("lots")),
    ];
    vhost.fedora_messaging_publish(env.path("").as_path(), &lines);
    relflow_testkit::wait_until(Duration::from_secs(60), "2 messages upstream", || depth() == Some(2));
    bridge(&|| depth() == Some(0), "the bridge to take both");

    assert_eq!(env.drain(), "drained: 2 message(s): 1 done, 1 dead-lettered\n");
    let runs = env.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["message_id"], "schema-valid");
    let dead = env.json(&["dead-letters", "list"]);
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("fails its schema: bodhi.update.comment.v1: at \"/comment/karma\": ")
            && reason.contains("\"lots\" is not of type \"integer\""),
        "{reason}"
    );
}

#[test]
fn under_validate_warn_a_schema_invalid_message_runs_and_is_counted_in_metrics() {
    let vhost = relflow_testkit::Vhost::new("schema-warn");
    let env = validating_source(&vhost, "warn", "true");
    env.ok(&["schemas", "import"]);
    let serve = Serve::start(env, &[]);
    wait_for(LIMIT, "the source to declare its queue", || {
        vhost.queues().iter().any(|q| q.name == "relflow-bridge.fm").then_some(())
    });
    let lines = [
        bodhi_comment("schema-valid", "bodhi.update.comment.v1", json!(1)),
        bodhi_comment("schema-invalid", "base.message", json!("lots")),
    ];
    vhost.fedora_messaging_publish(serve.env.path("").as_path(), &lines);
    wait_for(LIMIT, "both messages to run", || (serve.runs("status=succeeded").len() == 2).then_some(()));

    let scrape = serve.metrics();
    let invalid =
        |mode| value(&scrape, "relflow_messages_schema_invalid_total", &[("source", "amqp:fm"), ("mode", mode)]);
    assert_eq!((invalid("warn"), invalid("reject")), (1.0, 0.0), "{:?}", scrape.samples);
    assert_eq!(value(&scrape, "relflow_messages_received_total", &[("source", "amqp:fm")]), 2.0);
    assert!(serve.log().contains("fails its schema, queued anyway (validate = \"warn\")"), "{}", serve.log());
}
