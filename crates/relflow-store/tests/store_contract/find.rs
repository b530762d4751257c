//! Finding runs by what they were about: search over message content,
//! topic patterns and subjects, on both backends through `store_contract`'s
//! harness.

use relflow_store::{NewRun, RunFilter, RunStore, StoreError};
use serde_json::{json, Value};

use super::{postgres, sqlite};

both!(search_finds_ids_whole_and_by_prefix, search_finds_the_right_runs);
both!(search_combines_with_filters_and_pages, search_with_filters);
both!(search_without_words_is_refused, empty_search);
both!(topic_patterns_match_as_rules_do, topic_patterns);
both!(subject_is_stored_and_listed, subjects);

const COMPOSE: &str = "org.fedoraproject.prod.pungi.compose.status.change";
const TAG: &str = "org.fedoraproject.prod.buildsys.tag";
const STG_TAG: &str = "org.fedoraproject.stg.buildsys.tag";
const BODHI: &str = "org.fedoraproject.prod.bodhi.update.comment";

fn run(id: &str, topic: &str, rule: &str, body: Value) -> NewRun {
    NewRun {
        id: id.into(),
        message_id: format!("msg-{id}"),
        topic: topic.into(),
        rule: rule.into(),
        playbook: "p.yml".into(),
        attempt: 1,
        worker: "host:1".into(),
        // As the worker records it: the queued message, payload in `body`.
        message: json!({"id": format!("msg-{id}"), "topic": topic, "body": body, "headers": {}}),
    }
}

/// Five runs as Fedora's bus makes them, oldest first.
async fn fedora_runs(s: &dyn RunStore) {
    let runs = [
        run(
            "c1",
            COMPOSE,
            "compose",
            json!({"compose_id": "Fedora-Rawhide-20261124.n.0", "status": "FINISHED",
            "location": "https://kojipkgs.fedoraproject.org/compose/rawhide/Fedora-Rawhide-20261124.n.0/compose"}),
        ),
        run("c2", COMPOSE, "compose", json!({"compose_id": "Fedora-Rawhide-20261125.n.0", "status": "DOOMED"})),
        run(
            "t1",
            TAG,
            "tag",
            json!({"name": "kernel", "version": "6.12.1", "release": "200.fc41",
            "tag": "f41-updates-candidate", "owner": "jforbes"}),
        ),
        run(
            "t2",
            STG_TAG,
            "tag",
            json!({"name": "kernel", "version": "6.13.0", "release": "1.fc42",
            "tag": "f42-updates-candidate"}),
        ),
        run(
            "b1",
            BODHI,
            "bodhi",
            json!({"comment": {"text": "Works for me; see FEDORA-2026-abc123.",
            "update": {"alias": "FEDORA-2026-abc123", "status": "testing",
                       "builds": [{"nvr": "python-josepy-1.1.0-1.fc41"}]}}}),
        ),
    ];
    for r in &runs {
        s.start(r).await.unwrap();
    }
}

async fn found(s: &dyn RunStore, f: RunFilter) -> Vec<String> {
    let mut ids: Vec<String> = s.list(&f).await.unwrap().into_iter().map(|r| r.id).collect();
    ids.sort();
    ids
}

fn search(text: &str) -> RunFilter {
    RunFilter { search: Some(text.into()), ..Default::default() }
}

async fn search_finds_the_right_runs(s: &dyn RunStore) {
    fedora_runs(s).await;
    // Whole ids, in any case.
    assert_eq!(found(s, search("Fedora-Rawhide-20261124.n.0")).await, ["c1"]);
    assert_eq!(found(s, search("fedora-rawhide-20261125.n.0")).await, ["c2"]);
    assert_eq!(found(s, search("FEDORA-2026-abc123")).await, ["b1"]);
    // A tagged build's NVR, which its message only has in pieces.
    assert_eq!(found(s, search("kernel-6.12.1-200.fc41")).await, ["t1"]);
    assert_eq!(found(s, search("python-josepy-1.1.0-1.fc41")).await, ["b1"], "an update's builds");
    // Prefixes.
    assert_eq!(found(s, search("Fedora-Rawhide-202611")).await, ["c1", "c2"]);
    assert_eq!(found(s, search("kernel-6.1")).await, ["t1", "t2"]);
    assert_eq!(found(s, search("f42-updates")).await, ["t2"]);
    // Every word must match; words from paths and prose count.
    assert_eq!(found(s, search("kernel f41-updates-candidate")).await, ["t1"]);
    assert_eq!(found(s, search("rawhide finished")).await, ["c1"]);
    assert_eq!(found(s, search("works")).await, ["b1"]);
    // Not found: another id, a word inside a term (not a prefix), a key name.
    assert!(found(s, search("Fedora-Rawhide-20261126")).await.is_empty());
    assert!(found(s, search("updates-candidate")).await.is_empty());
    assert!(found(s, search("compose_id")).await.is_empty());
    assert_eq!(s.count(&search("Fedora-Rawhide-202611")).await.unwrap(), 2);
    assert_eq!(s.count(&search("nothing-like-this")).await.unwrap(), 0);
}

async fn search_with_filters(s: &dyn RunStore) {
    fedora_runs(s).await;
    let kernel = |f: RunFilter| RunFilter { search: Some("kernel".into()), ..f };
    assert_eq!(found(s, kernel(RunFilter { rule: Some("tag".into()), ..Default::default() })).await, ["t1", "t2"]);
    assert!(found(s, kernel(RunFilter { rule: Some("compose".into()), ..Default::default() })).await.is_empty());
    assert_eq!(found(s, kernel(RunFilter { topic: Some(STG_TAG.into()), ..Default::default() })).await, ["t2"]);
    // Paged with a cursor, each run once, newest first.
    let first = s.list(&kernel(RunFilter { limit: 1, ..Default::default() })).await.unwrap();
    assert_eq!(first.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["t2"]);
    let cursor = Some(relflow_store::Cursor::after(&first[0]));
    let second = s.list(&kernel(RunFilter { limit: 1, cursor, ..Default::default() })).await.unwrap();
    assert_eq!(second.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["t1"]);
}

async fn empty_search(s: &dyn RunStore) {
    fedora_runs(s).await;
    for text in ["", "  ", "* ?", "a"] {
        match s.list(&search(text)).await {
            Err(StoreError::BadFilter(why)) => assert!(why.contains("no word"), "{why}"),
            other => panic!("search {text:?}: {other:?}"),
        }
        assert!(matches!(s.count(&search(text)).await, Err(StoreError::BadFilter(_))));
    }
}

async fn topic_patterns(s: &dyn RunStore) {
    fedora_runs(s).await;
    let topic = |t: &str| RunFilter { topic: Some(t.into()), ..Default::default() };
    assert_eq!(found(s, topic("org.fedoraproject.*.buildsys.tag")).await, ["t1", "t2"]);
    assert_eq!(found(s, topic("org.fedoraproject.prod.#")).await, ["b1", "c1", "c2", "t1"]);
    assert_eq!(found(s, topic("#.tag")).await, ["t1", "t2"]);
    assert_eq!(found(s, topic("#")).await.len(), 5);
    assert_eq!(found(s, topic("org.*.prod.pungi.#")).await, ["c1", "c2"]);
    // `*` is exactly one word; an exact topic stays exact.
    assert!(found(s, topic("org.fedoraproject.*.tag")).await.is_empty());
    assert!(found(s, topic("org.fedoraproject.prod.buildsys")).await.is_empty());
    assert_eq!(found(s, topic(TAG)).await, ["t1"]);
    assert!(found(s, topic("no.such.#")).await.is_empty());
    assert_eq!(s.count(&topic("org.fedoraproject.*.buildsys.tag")).await.unwrap(), 2);
    match s.list(&topic("org.fedora*.#")).await {
        Err(StoreError::BadFilter(why)) => assert!(why.contains("whole words"), "{why}"),
        other => panic!("a bad pattern: {other:?}"),
    }
}

async fn subjects(s: &dyn RunStore) {
    fedora_runs(s).await;
    let subject = |id: &'static str| async move { s.get(id).await.unwrap().unwrap().record.subject };
    assert_eq!(subject("c1").await, "Fedora-Rawhide-20261124.n.0 FINISHED");
    assert_eq!(subject("t1").await, "kernel-6.12.1-200.fc41 tagged f41-updates-candidate");
    assert_eq!(subject("b1").await, "FEDORA-2026-abc123 testing");
    let listed = s.list(&RunFilter::default()).await.unwrap();
    let c2 = listed.iter().find(|r| r.id == "c2").unwrap();
    assert_eq!(c2.subject, "Fedora-Rawhide-20261125.n.0 DOOMED");
}
