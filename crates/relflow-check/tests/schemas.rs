//! Conditions checked against the real imported schemas (bodhi-messages,
//! koji-fedoramessaging-messages, ... from the venv).

use relflow_core::Config;

fn report(rules: &str, import: bool) -> relflow_check::CheckReport {
    let dir = tempfile::tempdir().unwrap();
    if import {
        relflow_schemas::import(&relflow_testkit::venv_python(), &dir.path().join("schemas")).unwrap();
    }
    let toml = format!("playbooks_dir = \"p\"\n{rules}");
    std::fs::write(dir.path().join("relflow.toml"), toml).unwrap();
    let config = Config::load(&dir.path().join("relflow.toml")).unwrap();
    relflow_check::check(&config, false)
}

fn rule(name: &str, topic: &str, when: &str) -> String {
    format!("[[rule]]\nname = \"{name}\"\ntopic = \"{topic}\"\nwhen = '{when}'\nplaybook = \"a.yml\"\n")
}

#[test]
fn a_key_no_schema_of_the_topic_has_is_an_error_with_a_did_you_mean() {
    let rules = [
        rule("typo", "org.fedoraproject.prod.bodhi.update.request.testing", r#"msg.update.stauts == "pending""#),
        rule("wide", "org.fedoraproject.*.bodhi.update.#", r#"msg.update.stauts == "pending""#),
        rule("koji", "org.fedoraproject.prod.buildsys.build.state.change", r#"msg.nmae == "kernel""#),
        rule("fine", "org.fedoraproject.*.bodhi.update.request.testing", r#"msg.update.status == "pending""#),
        rule(
            "guarded",
            "org.fedoraproject.prod.bodhi.update.comment",
            r#"has(msg.comment.mood) && msg.comment.mood == "x""#,
        ),
        // pungi has no schema package: the schemas say nothing about it.
        rule("unknown", "org.fedoraproject.prod.pungi.compose.status.change", r#"msg.stauts == "FINISHED""#),
        rule("everything", "#", r#"msg.whatever == 1"#),
    ]
    .concat();
    let r = report(&rules, true);
    assert!(r.schemas.as_ref().unwrap().classes >= 100, "{:?}", r.schemas);
    let errors = |name: &str| r.rules.iter().find(|c| c.rule == name).unwrap().errors.clone();
    let typo = errors("typo");
    assert_eq!(typo.len(), 1, "{typo:?}");
    assert!(
        typo[0].contains("`msg.update.stauts`: no schema of bodhi.update.request.testing (bodhi-messages "),
        "{typo:?}"
    );
    assert!(typo[0].ends_with("did you mean `status`?"), "{typo:?}");
    assert!(
        errors("wide")[0].contains("no schema of the ") && errors("wide")[0].contains("`status`"),
        "{:?}",
        errors("wide")
    );
    assert!(errors("koji")[0].contains("did you mean `name`?"), "{:?}", errors("koji"));
    for quiet in ["fine", "guarded", "unknown", "everything"] {
        assert!(errors(quiet).is_empty(), "{quiet}: {:?}", errors(quiet));
    }
}

#[test]
fn a_comparison_with_the_wrong_type_is_an_error() {
    // No sample of task.state.change ships, so only the schema can tell.
    let r = report(&rule("t", "org.fedoraproject.prod.buildsys.task.state.change", r#"msg.id == "7""#), true);
    let e = &r.rules[0].errors;
    assert!(e.len() == 1 && e[0].contains("says it is a number"), "{e:?}");
    assert_eq!(r.rules[0].samples, 0);
}

#[test]
fn without_imported_schemas_nothing_changes() {
    let r = report(
        &rule("typo", "org.fedoraproject.prod.bodhi.update.request.testing", r#"msg.update.stauts == "x""#),
        false,
    );
    assert!(r.schemas.is_none());
    assert!(r.errors().is_empty(), "{:?}", r.errors());
    assert!(r.warnings()[0].contains("no sample of"), "the sample check still warns: {:?}", r.warnings());
}
