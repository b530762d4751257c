//! `check --playbooks` names every file that defines a variable relflow's
//! extra vars would override (`topic`, `msg_id`, `headers`, `sent_at`):
//! play vars, vars files, imported playbooks, group_vars/host_vars beside
//! the playbooks and the inventory. A playbook without them gets no word.

use std::path::Path;

use relflow_core::Config;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn warns_about_playbook_variables_relflow_overrides_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let books = root.join("playbooks");
    write(
        &books.join("site.yml"),
        "- name: site\n  hosts: localhost\n  gather_facts: false\n  vars:\n    headers: {Accept: application/json}\n    \
         other: 1\n  vars_files:\n    - vars/common.yml\n  tasks:\n    - debug: var=headers\n\
         - import_playbook: imported.yml\n",
    );
    write(&books.join("vars/common.yml"), "sent_at: yesterday\nfine: 2\n");
    write(&books.join("imported.yml"), "- hosts: localhost\n  vars:\n    topic: mine\n  tasks: []\n");
    write(&books.join("clean.yml"), "- hosts: localhost\n  vars:\n    mine: 1\n  tasks: []\n");
    write(&books.join("group_vars/all/main.yml"), "msg_id: 7\n");
    write(&root.join("inventory/hosts.ini"), "localhost ansible_connection=local\n");
    write(&root.join("inventory/host_vars/localhost.yml"), "topic: from-host-vars\n");
    let config = root.join("relflow.toml");
    write(
        &config,
        &format!(
            "playbooks_dir = \"playbooks\"\ndata_dir = \"data\"\n[ansible]\nplaybook_cmd = {:?}\n\
             inventory = \"inventory/hosts.ini\"\n\n[[rule]]\nname = \"site\"\ntopic = \"a.b\"\nplaybook = \"site.yml\"\n\n\
             [[rule]]\nname = \"clean\"\ntopic = \"a.c\"\nplaybook = \"clean.yml\"\n",
            relflow_testkit::ansible_playbook().display().to_string()
        ),
    );
    let config = Config::load(&config).unwrap();

    let without = relflow_check::check(&config, false);
    assert!(without.shadowed_vars.is_empty(), "only with --playbooks: {:?}", without.shadowed_vars);

    let report = relflow_check::check(&config, true);
    assert!(report.errors().is_empty(), "{:?}", report.errors());
    let warnings = report.warnings();
    let named = |file: &Path, name: &str| {
        let want = format!("{}: ", file.display());
        warnings.iter().any(|w| w.starts_with(&want) && w.contains(&format!("defines `{name}`")))
    };
    let expected = [
        (books.join("site.yml"), "headers"),
        (books.join("vars/common.yml"), "sent_at"),
        (books.join("imported.yml"), "topic"),
        (books.join("group_vars/all/main.yml"), "msg_id"),
        (root.join("inventory/host_vars/localhost.yml"), "topic"),
    ];
    for (file, name) in &expected {
        assert!(named(file, name), "no warning that {} defines {name}: {warnings:#?}", file.display());
    }
    assert_eq!(report.shadowed_vars.len(), expected.len(), "{:#?}", report.shadowed_vars);
    assert!(warnings.iter().all(|w| !w.contains("clean.yml")), "{warnings:#?}");
    assert!(report.to_string().contains("defines `headers`"), "shown by `check`:\n{report}");
}
